"""Is the heat map faithful? Measured on phantoms whose lesion masks are known.

- Pointing game: on correctly classified lesion slices, the heat map's peak (upsampled to the
  model input) must fall inside the lesion, allowing half a feature-map cell of tolerance.
- Deletion test: blurring away the top-ranked 10% of the heat map's cells must drop the predicted
  class's score more than blurring a random 10% of the cells (averaged over draws).

Both run the served code: PNG bytes -> decode -> window -> model input -> int8 TFLite -> head ->
:func:`strokelens.reader.model.cam.class_activation_map`. ``python -m training.faithfulness`` trains a
phantom model of the served architecture (synthetic, never the default) and measures it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from phantoms import make_ct_slice, png_bytes, to_display as phantom_display
from strokelens.reader.imaging.decode import decode_image
from strokelens.reader.imaging.preprocess import pad_to_square, resize, to_display, to_model_input
from strokelens.reader.model.cam import class_activation_map, upsample
from strokelens.reader.model.served import ServedModel

LESIONS = ("hemorrhage", "ischemic")


def mask_in_model_space(mask: np.ndarray, size: int) -> np.ndarray:
    """The lesion mask moved through the same pad-and-resize as the image."""
    return resize(pad_to_square(mask.astype(np.float32)), size) > 0.5


def _delete(model_input: np.ndarray, blurred: np.ndarray, cells: np.ndarray, grid_shape: tuple[int, int]) -> np.ndarray:
    """The input with the given feature-map cells replaced by a heavy blur of the input (information
    removed, the slice's overall look kept, so the perturbation itself is not out of distribution)."""
    out = model_input.copy()
    ch, cw = model_input.shape[0] // grid_shape[0], model_input.shape[1] // grid_shape[1]
    for cell in cells:
        r, c = divmod(int(cell), grid_shape[1])
        out[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw] = blurred[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw]
    return out


def _score(predictor: ServedModel, model_input: np.ndarray, class_index: int) -> float:
    core = predictor.predictor
    return float(core.head.predict_proba(core.extractor.embed(model_input))[0][class_index])


def evaluate(predictor: ServedModel, n: int = 60, seed: int = 1234, fraction: float = 0.1, draws: int = 5) -> dict:
    """Pointing-game hit rate and deletion drops on fresh phantom lesion slices (not the training ones)."""
    if not predictor.predictor.extractor.spatial:
        raise ValueError("the model does not expose its feature map; no class activation map to test")
    rng = np.random.default_rng(seed)
    size = predictor.manifest.input_size
    hits, top_drops, random_drops, correct = [], [], [], 0
    for i in range(n):
        lesion = LESIONS[i % len(LESIONS)]
        if lesion not in predictor.labels:
            continue
        phantom = make_ct_slice(rng, 256, lesion)
        model_input = to_model_input(to_display(decode_image(png_bytes(phantom_display(phantom))))[0], size)
        prediction = predictor.predictor.predict(model_input)
        if prediction.label != lesion:
            continue
        correct += 1
        c = predictor.labels.index(lesion)
        grid = class_activation_map(prediction.feature_map, predictor.predictor.head, c, predictor.cam_baseline)
        heat = upsample(grid, size)
        mask = mask_in_model_space(phantom.lesion_mask, size)
        tolerance = size // prediction.feature_map.shape[0] // 2
        y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
        window = mask[max(0, y - tolerance):y + tolerance + 1, max(0, x - tolerance):x + tolerance + 1]
        hits.append(bool(window.any()))

        base = _score(predictor, model_input, c)
        cells = grid.size
        k = max(1, round(fraction * cells))
        as_8bit = Image.fromarray(np.round(model_input * 255).astype(np.uint8))  # Pillow blurs 8-bit images
        blurred = np.asarray(as_8bit.filter(ImageFilter.GaussianBlur(size / 16)), np.float32) / 255.0
        top_drops.append(base - _score(predictor, _delete(model_input, blurred, np.argsort(grid.ravel())[-k:], grid.shape), c))
        drops = [base - _score(predictor, _delete(model_input, blurred, rng.choice(cells, k, replace=False), grid.shape), c)
                 for _ in range(draws)]
        random_drops.append(float(np.mean(drops)))
    return {
        "phantom_lesion_slices": n,
        "correctly_classified": correct,
        "pointing_game": float(np.mean(hits)) if hits else None,
        "deletion_fraction": fraction,
        "deletion_drop_top": float(np.mean(top_drops)) if top_drops else None,
        "deletion_drop_random": float(np.mean(random_drops)) if random_drops else None,
    }


def train_phantom_model(out: Path, *, per_class: int = 40, seed: int = 0, epochs: int | None = None,
                        input_size: int | None = None, folds: int | None = None) -> Path:
    """Train the served architecture on CT phantoms (3 classes) with ``training.train``: synthetic."""
    from phantoms import write_dataset

    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(Path(tmp) / "phantoms", per_class, seed=seed, modalities=("CT",), layout="flat")
        cmd = [sys.executable, "-m", "training.train", "--data", str(Path(tmp) / "phantoms"), "--out", str(out),
               "--seed", str(seed), "--synthetic"]
        if epochs:
            cmd += ["--epochs", str(epochs)]
        if input_size:
            cmd += ["--input-size", str(input_size)]
        if folds:
            cmd += ["--folds", str(folds)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def measure(seed: int = 0, epochs: int = 20, folds: int = 2) -> dict:
    """Train a phantom model of the served recipe in a temporary folder and measure its heat maps."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = train_phantom_model(Path(tmp) / "phantom-model", seed=seed, epochs=epochs, folds=folds)
        report = evaluate(ServedModel(folder))
    report["model"] = f"CT phantoms, 3 classes, same recipe (--epochs {epochs} --folds {folds}), synthetic, discarded"
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="a phantom-trained artifact folder (else one is trained)")
    parser.add_argument("--work", type=Path, default=Path("build/phantom-model"))
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    parser.add_argument("--epochs", type=int)
    args = parser.parse_args(argv)
    folder = args.model_dir or train_phantom_model(args.work, epochs=args.epochs)
    report = evaluate(ServedModel(folder))
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
