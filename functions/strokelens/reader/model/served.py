"""The served model as one object: a decoded image in, the typed slice result out.

Order for one slice: display window -> model input -> CNN + head + decision -> out-of-distribution
judgement -> heat map of the predicted class (skipped when out of distribution). Loaded once per
container; the reading pipelines (``reader/reading.py``) only decode, call :meth:`ServedModel.read`
and render previews.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from strokelens.core.schema import Heatmap, Manifest, Notice, SliceResult
from strokelens.reader.imaging.decode import BURNED_IN_HEADER, BURNED_IN_REPORTED, DecodedImage
from strokelens.reader.imaging.preprocess import to_display, to_model_input
from strokelens.reader.model.assess import brain_fraction
from strokelens.reader.model.cam import class_activation_map, normalised, upsample
from strokelens.reader.model.findings import FindingModels, decide_route, stroke_type
from strokelens.reader.model.ood import MAX_CHROMA, OodJudge, OodVerdict
from strokelens.reader.model.predictor import Prediction, Predictor
from strokelens.reader.timing import Timer

HEATMAP_METHOD = ("class activation map of the served int8 model: the predicted class's head weights applied "
                  "to the last feature map minus the mean training feature map (an exact decomposition of how the "
                  "logit differs from an average slice), positive evidence only, scaled to [0, 1]")
# Model v2 keeps one reference map per modality: against the pooled CT + DWI mean, every DWI map
# lit up where DWI slices differ from CT ones, not where the lesion is.
HEATMAP_METHOD_PER_MODALITY = ("class activation map of the served int8 model: the shown label's head weights "
                               "applied to the last feature map minus the mean training feature map of the "
                               "slice's modality (an exact decomposition of how the logit differs from an average "
                               "slice of that modality), positive evidence only, scaled to [0, 1]")


@dataclass(frozen=True)
class SliceReading:
    """A slice's typed result, its warnings, and the images the previews are drawn from."""

    result: SliceResult
    notices: list[Notice]
    display: np.ndarray = field(repr=False)
    model_input: np.ndarray = field(repr=False)
    heat: np.ndarray | None = field(default=None, repr=False)  # heat map in model-input space
    cropped: bool = False  # the model input is cropped to the head (model v2)


class ServedModel:
    """Predictor + OOD checks + CAM baseline of one model folder."""

    def __init__(self, folder: Path | None = None, num_threads: int = 1) -> None:
        self.predictor = Predictor(folder, num_threads=num_threads)
        catalogue = self.predictor.catalogue
        self.ood = OodJudge.load(catalogue.ood, catalogue.ood_image, self.manifest.modalities)
        self.cam_baseline: np.ndarray | None = None
        # Model v2 also keeps one baseline per finding route (the mean feature map of that modality).
        self.cam_baselines: dict[str, np.ndarray] = {}
        if catalogue.cam_baseline.exists():
            with np.load(catalogue.cam_baseline) as arrays:
                self.cam_baseline = arrays["mean_feature_map"].astype(np.float64)
                self.cam_baselines = {k: arrays[k].astype(np.float64) for k in arrays.files if k != "mean_feature_map"}
        # Model v2 (per-modality findings) when the manifest says so; v1 folders read as before.
        self.v2: FindingModels | None = (FindingModels.load(catalogue.root, self.manifest.raw)
                                         if self.manifest.raw.get("findings") else None)

    def baseline_for(self, route: str | None) -> tuple[np.ndarray | None, str]:
        """The heat map's reference feature map for a finding route (the overall one when none is kept),
        with the method text that states which reference was used."""
        if route and route in self.cam_baselines:
            return self.cam_baselines[route], HEATMAP_METHOD_PER_MODALITY
        return self.cam_baseline, HEATMAP_METHOD

    @property
    def manifest(self) -> Manifest:
        return self.predictor.manifest

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    def heatmap_grid(self, prediction: Prediction, class_name: str) -> np.ndarray | None:
        """Positive evidence for ``class_name`` on the feature-map grid, in [0, 1] (None without a map)."""
        if prediction.feature_map is None:
            return None
        cam = class_activation_map(prediction.feature_map, self.predictor.head, self.labels.index(class_name),
                                   self.cam_baseline)
        return normalised(cam)

    def read(self, decoded: DecodedImage, declared_modality: str | None = None, *, timer: Timer | None = None,
             with_heatmap: bool = True) -> SliceReading:
        timer = timer or Timer()
        if self.v2 is not None:
            return self._read_v2(decoded, declared_modality, timer, with_heatmap)
        with timer("preprocess"):
            display, display_how = to_display(decoded)
            model_input = to_model_input(display, self.manifest.input_size)
        prediction = self.predictor.predict(model_input, timer)
        with timer("ood"):
            assert prediction.embedding is not None  # the predictor always returns it
            verdict = self.ood.judge(decoded, display, prediction.embedding, declared_modality)

        heat, heatmap = None, None
        if with_heatmap and not verdict.out_of_distribution:
            with timer("heatmap"):
                grid = self.heatmap_grid(prediction, prediction.label)
                if grid is not None:
                    heat = upsample(grid, self.manifest.input_size)
                    heatmap = Heatmap(HEATMAP_METHOD, prediction.label, np.round(grid, 3).tolist())
        result = SliceResult(
            # No label claim for an image unlike the training data; the model output stays visible.
            label=None if verdict.out_of_distribution else prediction.label,
            model_label=prediction.label,
            probabilities=prediction.probabilities,
            uncertain=prediction.uncertain,
            out_of_distribution=verdict.out_of_distribution,
            ood_reason=verdict.reason,
            model_version=prediction.model_version,
            synthetic_model=self.manifest.synthetic,
            modality=decoded.modality or declared_modality,
            source_format=decoded.source_format,
            preprocessing=display_how,
            image_size=list(decoded.pixels.shape),
            ood_distance=None if verdict.distance is None else round(verdict.distance, 3),
            ood_threshold=None if verdict.threshold is None else round(verdict.threshold, 3),
            dicom=decoded.dicom_tags or None,
            heatmap=heatmap,
            deidentification=None if decoded.identity is None else
            {"removed_by": decoded.identity.removed_by, "counts": decoded.identity.counts},
        )
        return SliceReading(result, self._notices(decoded, declared_modality, verdict, prediction),
                            display, model_input, heat)

    def _read_v2(self, decoded: DecodedImage, declared_modality: str | None, timer: Timer,
                 with_heatmap: bool) -> SliceReading:
        """Model v2: crop to the head -> CNN -> route (header / declared / router) -> the modality's
        finding head, OOD model and operating point -> heat map of the finding."""
        v2 = self.v2
        assert v2 is not None  # only called for a v2 manifest
        with timer("preprocess"):
            display, display_how = to_display(decoded)
            model_input = to_model_input(display, self.manifest.input_size, crop=v2.crop)
        with timer("cnn"):
            output = self.predictor.extractor.run(model_input)
            embedding = self.predictor.extractor.pool(output)
        with timer("route"):
            router_says, confidence = v2.router.route(embedding) if v2.router is not None else (None, 1.0)
            route = decide_route(decoded.modality, decoded.mr_sequence, declared_modality, router_says, confidence)
        notices = _input_notices(decoded, declared_modality)
        model = v2.findings.get(route.modality or "")
        probabilities: dict[str, float] = {}
        label, uncertain, refusal, distance, threshold, assessable = None, False, route.refusal, None, None, None
        heat, heatmap = None, None
        if route.warning:
            notices.append(Notice.of("MODALITY_CHECK", route.warning))
        if model is None and refusal is None:
            refusal = f"No finding is read on {route.modality} by this model."
        if model is not None and refusal is None:
            with timer("head"):
                probabilities = model.probabilities(embedding)
                p = probabilities[model.finding]
                label = model.finding if p >= model.threshold else "normal"
                uncertain = abs(p - model.threshold) < model.uncertain_band
            with timer("ood"):
                reason = ("This is a colour image (for example a photograph), not a grayscale head scan slice."
                          if decoded.chroma > MAX_CHROMA else None)
                nearest = model.ood_distance(embedding) if reason is None else None
                if nearest is not None:
                    distance, threshold = nearest
                    if distance > threshold:
                        reason = (f"The image is unlike the {route.modality} slices the model was trained on "
                                  f"(feature distance {distance:.1f} > {threshold:.1f}).")
                refusal = reason
            if route.modality == "CT" and v2.assess_cut is not None:
                assessable = brain_fraction(model_input) >= v2.assess_cut
            if with_heatmap and refusal is None:
                with timer("heatmap"):
                    baseline, method = self.baseline_for(route.modality)
                    cam = class_activation_map(output, model.head, 1 if label == model.finding else 0, baseline)
                    grid = normalised(cam)
                    heat = upsample(grid, self.manifest.input_size)
                    heatmap = Heatmap(method, label, np.round(grid, 3).tolist())
            notices.append(Notice.of("FINDING_NOT_ASSESSED", model.not_assessed_sentence()))
        if refusal is not None:
            code = "OUT_OF_DISTRIBUTION"
            if route.modality == "MR-other":
                notices.append(Notice.of("SEQUENCE_NOT_READ"))
            notices.append(Notice.of(code, refusal))
        elif assessable is False:
            notices.append(Notice.of("NOT_ASSESSABLE"))
        elif uncertain:
            notices.append(Notice.of("INDETERMINATE"))
        if self.manifest.synthetic:
            notices.append(Notice.of("SYNTHETIC_MODEL"))
        finding = model.finding if model is not None and refusal is None else None
        shown = None if refusal is not None else label
        result = SliceResult(
            label=shown, model_label=label or "not assessed", probabilities=probabilities, uncertain=uncertain,
            out_of_distribution=refusal is not None, ood_reason=refusal, model_version=self.version,
            synthetic_model=self.manifest.synthetic, modality=decoded.modality or declared_modality,
            source_format=decoded.source_format, preprocessing=display_how + ", cropped to the head",
            image_size=list(decoded.pixels.shape),
            ood_distance=None if distance is None else round(distance, 3),
            ood_threshold=None if threshold is None else round(threshold, 3),
            dicom=decoded.dicom_tags or None, heatmap=heatmap,
            deidentification=None if decoded.identity is None else
            {"removed_by": decoded.identity.removed_by, "counts": decoded.identity.counts},
            finding_assessed=finding,
            not_assessed=list(model.not_assessed) if model is not None else ["hemorrhage", "ischemic"],
            stroke_type=stroke_type(finding, shown if assessable is not False else None),
            routed_as=route.modality, assessable=assessable,
        )
        return SliceReading(result, notices, display, model_input, heat, cropped=v2.crop)

    def _notices(self, decoded: DecodedImage, declared_modality: str | None, verdict: OodVerdict,
                 prediction: Prediction) -> list[Notice]:
        notices = _input_notices(decoded, declared_modality)
        if verdict.out_of_distribution:
            notices.append(Notice.of("OUT_OF_DISTRIBUTION", verdict.reason))
        elif prediction.uncertain:
            notices.append(Notice.of("INDETERMINATE"))
        if self.manifest.synthetic:
            notices.append(Notice.of("SYNTHETIC_MODEL"))
        return notices


# Where the suspicion of burned-in text came from, appended to the BURNED_IN_TEXT warning.
BURNED_IN_WHY = {BURNED_IN_HEADER: "The DICOM header says so (Burned In Annotation).",
                 BURNED_IN_REPORTED: "The uploader reported it (the web app does when a corner of the image looks "
                                     "like text)."}


def _input_notices(decoded: DecodedImage, declared_modality: str | None) -> list[Notice]:
    """What the input itself calls for, whichever model reads it: adjustments made while decoding,
    identifiers the server had to remove, text burned into the pixels, and a header that overrules
    the chosen modality."""
    notices = [Notice.of("IMAGE_CONVERTED", note) for note in decoded.notes]
    if decoded.burned_in_text:
        notices.append(Notice.of("BURNED_IN_TEXT", BURNED_IN_WHY.get(decoded.burned_in_text)))
    if decoded.identity is not None and decoded.identity.removed_by == "server":
        counts = ", ".join(f"{n} {category}" for category, n in sorted(decoded.identity.counts.items()))
        notices.append(Notice.of("IDENTIFIERS_REMOVED_ON_SERVER", f"Removed: {counts}."))
    if decoded.modality and declared_modality and decoded.modality != declared_modality:
        # The header wins over what was chosen in the UI; say so rather than refuse.
        notices.append(Notice.of("MODALITY_MISMATCH", f"Chosen {declared_modality}, header {decoded.modality}."))
    return notices
