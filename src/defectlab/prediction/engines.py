"""Turn an artifact's saved state back into a model that scores pixels, one engine per task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from defectlab.errors import InvalidInputError
from defectlab.runtime.engine import EngineOutput, defect_scores

__all__ = ["Engine", "EngineOutput", "build_engine", "build_region_engine"]


class Engine(Protocol):
    def score(self, images: Sequence[np.ndarray], *, heatmaps: bool) -> EngineOutput: ...


class _ClassificationEngine:
    def __init__(self, state: dict[str, Any], class_names: list[str]) -> None:
        from defectlab.training.classifier import ClassifierModel
        from defectlab.training.patches import PatchClassifier

        saved = {key: value for key, value in state.items() if key != "kind"}
        self.model = PatchClassifier.from_dict(saved) if state.get("kind") == "patches" else ClassifierModel.from_dict(saved)
        self.class_names = class_names

    def score(self, images: Sequence[np.ndarray], *, heatmaps: bool) -> EngineOutput:
        probabilities = np.asarray(self.model.predict_proba(images), dtype=np.float64)
        return EngineOutput(scores=defect_scores(probabilities, self.class_names), probabilities=probabilities)


class _AnomalyEngine:
    def __init__(self, state: dict[str, Any]) -> None:
        from defectlab.training.anomaly import AnomalyModel

        self.model = AnomalyModel.from_dict(state)

    def score(self, images: Sequence[np.ndarray], *, heatmaps: bool) -> EngineOutput:
        output = self.model.predict(images, heatmaps=heatmaps)
        return EngineOutput(scores=np.asarray(output.scores, dtype=np.float64), heatmaps=output.heatmaps)


class _SegmentationEngine:
    """Per-pixel classes, whole or tile by tile, turned into regions and a score by the decision rules."""

    def __init__(self, state: dict[str, Any], class_names: list[str], threshold: float) -> None:
        from defectlab.training.segmentation import Segmenter

        self.model = Segmenter.from_dict(state["model"])
        self.class_names, self.threshold = list(class_names), float(threshold)
        self.rules, self.tiling = state.get("rules") or {}, state.get("tiling")
        self.outlines = _outline_levels(state.get("outlines"), self.class_names, self.threshold)

    def score(self, images: Sequence[np.ndarray], *, heatmaps: bool) -> EngineOutput:
        scores, regions, planes, masks = [], [], [], []
        for pixels in images:
            stitched = self.stitch(pixels)
            score, found, mask = self.decide(stitched)
            scores.append(score)
            regions.append(found)
            masks.append(mask)
            planes.append(stitched.defect.astype(np.float32) if heatmaps else None)
        return EngineOutput(scores=np.asarray(scores, dtype=np.float64), regions=regions, masks=masks,
                            heatmaps=planes if heatmaps else None)

    def decide(self, stitched) -> tuple[float, list[dict[str, Any]], np.ndarray]:  # noqa: ANN001 - a Stitched
        """Return one image's score, its regions and its mask of region classes, from its stitched result."""
        from defectlab.runtime.regions import describe_regions, draw_regions, image_score

        mask = draw_regions(stitched.classes, stitched.defect, threshold=self.threshold, outlines=self.outlines)
        found = describe_regions(mask, stitched.defect, self.class_names, rules=self.rules)
        return image_score(found, stitched.defect, threshold=self.threshold), found, mask

    def stitch(self, pixels: np.ndarray):  # noqa: ANN201 - a runtime.tiles.Stitched
        """Return one image's likeliest defect class and defect probability per pixel, at its full size."""
        from defectlab.runtime.tiles import predict_tiled, stitch_whole

        if self.tiling is None:
            return stitch_whole(self.model.predict([pixels])[0])
        return predict_tiled(pixels, self.model.predict, tuple(self.tiling["tile"]), int(self.tiling["overlap"]))


def _outline_levels(levels: dict[str, float] | None, class_names: list[str], threshold: float) -> list[float] | None:
    """Return the outline level per class index, the threshold where a class has none; None without levels."""
    if not levels:
        return None
    return [float(levels.get(name, threshold)) for name in class_names]


class _DetectionEngine:
    """Boxes, whole or tile by tile, turned into a score by the decision rules."""

    def __init__(self, state: dict[str, Any], class_names: list[str], threshold: float) -> None:
        from defectlab.training.detection import Detector

        self.model = Detector.from_dict(state["model"])
        self.threshold = float(threshold)
        self.rules, self.tiling = state.get("rules") or {}, state.get("tiling")

    def score(self, images: Sequence[np.ndarray], *, heatmaps: bool) -> EngineOutput:
        from defectlab.runtime.regions import decide_from_boxes

        scores, kept = [], []
        for pixels in images:
            score, boxes = decide_from_boxes(self._boxes(pixels), threshold=self.threshold, rules=self.rules)
            scores.append(score)
            kept.append(boxes)
        return EngineOutput(scores=np.asarray(scores, dtype=np.float64), regions=kept)

    def _boxes(self, pixels: np.ndarray) -> list[dict[str, Any]]:
        if self.tiling is None:
            return self.model.predict([pixels])[0]
        from defectlab.runtime.tiles import cut_tile, plan_tiles
        from defectlab.training.detection import non_max_suppression

        tile, overlap = tuple(self.tiling["tile"]), int(self.tiling["overlap"])
        found = []
        for spot in plan_tiles(pixels.shape[0], pixels.shape[1], tile, overlap):
            for box in self.model.predict([cut_tile(pixels, spot.y, spot.x, tile)])[0]:
                x0, y0, x1, y1 = box["box"]
                placed = [min(x0 + spot.x, pixels.shape[1]), min(y0 + spot.y, pixels.shape[0]),
                          min(x1 + spot.x, pixels.shape[1]), min(y1 + spot.y, pixels.shape[0])]
                found.append({**box, "box": placed})
        return _merge_boxes(found, non_max_suppression)


def _merge_boxes(found: list[dict[str, Any]], suppress) -> list[dict[str, Any]]:  # noqa: ANN001
    """Keep, per class, the best of boxes that overlapping tiles found twice."""
    kept = []
    for name in sorted({box["class"] for box in found}):
        same = [box for box in found if box["class"] == name]
        chosen = suppress(np.array([box["box"] for box in same], dtype=np.float64),
                          np.array([box["score"] for box in same], dtype=np.float64))
        kept.extend(same[i] for i in chosen)
    return sorted(kept, key=lambda box: -box["score"])


def build_region_engine(state: dict[str, Any], class_names: list[str], *, threshold: float) -> Engine:
    """Return the engine of a segmentation or detection model's saved state."""
    if state["kind"] == "segmentation":
        return _SegmentationEngine(state, class_names, threshold)
    return _DetectionEngine(state, class_names, threshold)


def build_engine(artifact: dict[str, Any]) -> Engine:
    """Return the engine for the artifact's task.

    Raises:
        InvalidInputError: The artifact's task cannot be predicted by this version.
    """
    task = artifact["task"]
    if task == "classification":
        return _ClassificationEngine(artifact["state"], artifact["class_names"])
    if task == "anomaly":
        return _AnomalyEngine(artifact["state"])
    if task in ("segmentation", "detection"):
        return build_region_engine(artifact["state"], artifact["class_names"], threshold=artifact["threshold"])
    raise InvalidInputError(f"models of task {task!r} cannot be used for prediction in this version of defectlab")
