"""``python -m training.v2.train``: model v2 end to end (CPU, 2 threads).

Stages (each logged with its time): load every source through the serving preprocessing (cached)
-> shared CNN on the training splits, int8 export, feature maps of every slice -> heads per finding
(LR / SVM / RF / BiGRU compared on grouped OOF), MIL on ct-ich, aggregation chosen by grouped CV,
router, OOD per modality -> held-out test metrics (once) -> artifact folder + ``v2_metrics.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from training import cnn
from training.progress import Stopwatch
from training.v2 import data
from training.v2.build import write_folder
from training.v2.card import render, served_ct_slices, write_split
from training.v2.crossfit import card_block, matching_record, oof_scores, recipe
from training.v2.experiment import ASSESS_CUT, measure, study_counts
from training.v2.extractor import BAG_K, STUDY_TARGETS, TRUNKS, cnn_config, train_extractor
from training.v2.transfer import cnn_transfer
from training.v2.trust import measure as measure_trust


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m training.v2.train")
    for name, default in data.DEFAULT_SOURCES.items():
        ap.add_argument(f"--{name}", default=default, help=f"{name} data root ('' to leave out)")
    ap.add_argument("--out", default="build/model_v2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--trunks", type=int, default=TRUNKS, help="CNN trunks (an ensemble when > 1)")
    ap.add_argument("--bag-k", type=int, default=BAG_K,
                    help="> 0: the CNN learns ct-ich studies through a top-k bag loss (0: naive study labels)")
    ap.add_argument("--study-targets", choices=("naive", "share"), default=STUDY_TARGETS,
                    help="a haemorrhage study's slices target haemorrhage (naive) or the study's share of slices "
                         "with blood (share, soft targets)")
    ap.add_argument("--input-size", type=int, default=128)
    ap.add_argument("--assess-cut", type=float, default=ASSESS_CUT,
                    help="brain-fraction cut-off below which a CT slice is not assessable")
    ap.add_argument("--previous-card", default="functions/strokelens/artifacts/model_card.json",
                    help="the installed card whose numbers are kept as history")
    ap.add_argument("--reuse-extractor", action="store_true",
                    help="keep OUT/extractor.tflite and its cached feature maps (OUT/maps.npy); re-fit only the classical stage")
    ap.add_argument("--card-only", action="store_true",
                    help="re-write OUT's card and charts from its saved metrics (no training, no measuring)")
    ap.add_argument("--mil-round", default="auto", choices=["auto", "1", "2"],
                    help="the CNN's MIL round to keep (auto: the higher grouped-CV study AUC with the CNN fixed)")
    ap.add_argument("--crossfit", default="docs/model_v2/crossfit/crossfit.json",
                    help="the cross-fitted record (make crossfit): when it measured this build's recipe it chooses the "
                         "study pooling, sets the operating points and goes into the card")
    ap.add_argument("--synthetic", action="store_true", help="mark the artifacts as trained on phantoms")
    ap.add_argument("--bigru", action="store_true", help="include the BiGRU head in the comparison (slow)")
    return ap.parse_args(argv)


def _cross_fitted(path: str, metrics: dict, input_size: int, seed: int, epochs: int, trunks: int,
                  bag_k: int = 0, study_targets: str = "naive") -> dict | None:
    """The cross-fitted record's card block when it measured this build's recipe (else None)."""
    if not path:
        return None
    chosen = (metrics.get("extractor_rounds") or {}).get("chosen", 1)
    build = recipe(metrics["sources"], input_size, seed, epochs, metrics["assess_cut"], metrics["ct_head_C"], trunks,
                   bag_k, study_targets)
    rule = metrics["aggregation_chosen"]
    fixed = next(r["oof_study_roc_auc"] for r in metrics["aggregation"] if r["rule"] == rule)
    return card_block(Path(path), build, chosen, rule, fixed)


def rerender(out: Path, crossfit: str = "") -> dict:
    """The card and charts again from a trained folder's own files (after a change to the card's layout)."""
    card = json.loads((out / "model_card.json").read_text())
    metrics = json.loads((out / "v2_metrics.json").read_text())
    served = {k: v for k, v in json.loads((out / "metrics.json").read_text()).items() if k != "v2"}
    trust_block = {k: card[k] for k in ("calibration", "calibration_png", "calibration_png_error", "heatmaps") if k in card}
    manifest = json.loads((out / "manifest.json").read_text())
    render(out, metrics, served, card.get("history"), trust_block or None,
           _cross_fitted(crossfit, metrics, manifest["input_size"], manifest["seed"], manifest["epochs"],
                         manifest.get("trunks", 1), manifest.get("bag_k", 0), manifest.get("study_targets", "naive")))
    return metrics


def run(args) -> dict:
    watch = Stopwatch()
    out = Path(args.out)
    if args.card_only:
        return rerender(out, args.crossfit)
    out.mkdir(parents=True, exist_ok=True)
    cnn.configure(args.seed)
    sources = {k: getattr(args, k.replace("-", "_")) for k in data.DEFAULT_SOURCES}

    def bar(i, n):
        if i % max(1, n // 20) == 0:
            watch.log(f"load [{'#' * (20 * i // n):20s}] {i}/{n}")

    table = data.load(sources, args.input_size, args.seed, cache=out / "cache.npz", progress=bar)
    watch.log(f"loaded {len(table.x)} slices")
    config = cnn_config(args.input_size, args.epochs, args.trunks, args.bag_k, args.study_targets)
    if args.reuse_extractor and (out / "extractor.tflite").is_file() and (out / "maps.npy").is_file():
        maps, size = np.load(out / "maps.npy").astype(np.float32), (out / "extractor.tflite").stat().st_size
        watch.log("reusing the trained extractor and its feature maps")
    else:
        counts = study_counts(sources["ct-studies"]) if sources.get("ct-studies") else None
        maps, size, rounds = train_extractor(table, out, config, args.seed, args.assess_cut, counts, log=watch.log,
                                               keep_round=None if args.mil_round == "auto" else int(args.mil_round))
        np.save(out / "maps.npy", maps.astype(np.float32))  # exact: --reuse-extractor must fit what a full run fits
        (out / "extractor_rounds.json").write_text(json.dumps(rounds, indent=1))
    rounds_file = out / "extractor_rounds.json"
    chosen = json.loads(rounds_file.read_text()).get("chosen", 1) if rounds_file.is_file() else 1

    def crossfit_for(c: float) -> dict | None:  # cross-fitted scores of this recipe, if measured
        build = recipe(sources, args.input_size, args.seed, args.epochs, args.assess_cut, c, args.trunks, args.bag_k,
                       args.study_targets)
        record = matching_record(Path(args.crossfit), build, chosen) if args.crossfit else None
        return oof_scores(record, chosen) if record else None

    metrics, parts = measure(table, maps, args.seed, bigru=args.bigru, assess_cut=args.assess_cut,
                             out_json=out / "v2_metrics.json", log=watch.log, crossfit_for=crossfit_for)
    manifest = write_folder(out, out / "extractor.tflite", parts, metrics, cam_baselines(table, maps, args.assess_cut),
                            {"assess_cut": args.assess_cut, "seed": args.seed, "epochs": args.epochs, "trunks": args.trunks,
                             # named only when set, so the default recipe keeps its version hash
                             **({"bag_k": args.bag_k} if args.bag_k else {}),
                             **({"study_targets": args.study_targets} if args.study_targets != "naive" else {}), "extractor_bytes": size,
                             "created_by": "python -m training.v2.train", "sources": sources,
                             "synthetic": bool(args.synthetic)})
    metrics["model_version"] = manifest["version"]
    metrics["extractor_rounds"] = json.loads(rounds_file.read_text()) if rounds_file.is_file() else None
    if sources.get("ct-studies") and sources.get("ct-slices"):
        metrics["transfer_cnn"] = cnn_transfer(table, config, args.seed, args.assess_cut,
                                               study_counts(sources["ct-studies"]), log=watch.log)
    metrics["sources"], metrics["assess_cut"], metrics["synthetic"] = sources, args.assess_cut, bool(args.synthetic)
    watch.log("card: served-path metrics on the ct-hemorrhage test split, split file, charts")
    served = served_ct_slices(out, table, args.seed)
    served["model_version"] = manifest["version"]
    (out / "metrics.json").write_text(json.dumps({**served, "v2": metrics}, indent=1, default=float))
    write_split(out, table, sources, args.seed)
    previous = _previous_card(Path(args.previous_card))
    trust_block = measure_trust(out, table, maps, args.seed, log=watch.log)  # calibration + heat-map faithfulness
    render(out, metrics, served, previous, trust_block,
           _cross_fitted(args.crossfit, metrics, args.input_size, args.seed, args.epochs, args.trunks, args.bag_k,
                         args.study_targets))
    metrics["runtime_s"] = round(watch.seconds, 1)
    (out / "v2_metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
    watch.log(f"model v2 {manifest['version']} written to {out}")
    return metrics


def cam_baselines(table, maps: np.ndarray, assess_cut: float) -> dict[str, np.ndarray]:
    """Mean training feature maps: all slices, and per finding route (CT: assessable CT slices; DWI)."""
    train = table.split == "train"
    is_ct = np.isin(table.source, ["ct-slices", "ct-studies"]) & ((table.source == "ct-slices") | (table.brain >= assess_cut))
    out = {"mean_feature_map": maps[train].mean(axis=0)}
    for key, rows in (("CT", train & is_ct), ("MR-DWI", train & (table.source == "dwi"))):
        if rows.any():
            out[key] = maps[rows].mean(axis=0)
    return out


def _previous_card(path: Path) -> dict | None:
    """The installed card's identity and numbers (and its own history), kept in the new card."""
    if not path.is_file():
        return None
    card = json.loads(path.read_text())
    if card.get("history") and card.get("findings"):  # already a v2 card: keep its history chain
        return card["history"]
    return {k: card.get(k) for k in ("name", "version", "metrics", "data", "ood", "heads_choice")}


def main(argv=None):
    run(parse_args(argv))


if __name__ == "__main__":
    main()
