"""Turn an artifact's saved state back into a model that scores pixels, one engine per task."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from defectlab.errors import InvalidInputError
from defectlab.formats.records import OK_CLASS

__all__ = ["EngineOutput", "build_engine"]


@dataclass
class EngineOutput:
    """Scores of a batch of images.

    Attributes:
        scores: float ``(N,)`` defect scores in 0..1; higher is more likely defective.
        probabilities: float ``(N, C)`` per-class probabilities (classification only).
        heatmaps: float ``(H, W)`` per image in 0..1, each the size of its image (anomaly only).
    """

    scores: np.ndarray
    probabilities: np.ndarray | None = None
    heatmaps: list[np.ndarray] | None = None


class Engine(Protocol):
    def score(self, images: Sequence[np.ndarray], *, heatmaps: bool) -> EngineOutput: ...


class _ClassificationEngine:
    def __init__(self, state: dict[str, Any], class_names: list[str]) -> None:
        from defectlab.training.classifier import ClassifierModel
        from defectlab.training.patches import PatchClassifier

        saved = {key: value for key, value in state.items() if key != "kind"}
        self.model = PatchClassifier.from_dict(saved) if state.get("kind") == "patches" else ClassifierModel.from_dict(saved)
        self.ok_index = class_names.index(OK_CLASS) if OK_CLASS in class_names else None

    def score(self, images: Sequence[np.ndarray], *, heatmaps: bool) -> EngineOutput:
        probabilities = np.asarray(self.model.predict_proba(images), dtype=np.float64)
        if self.ok_index is None:
            scores = np.ones(len(images))
        else:
            scores = 1.0 - probabilities[:, self.ok_index]
        return EngineOutput(scores=scores, probabilities=probabilities)


class _AnomalyEngine:
    def __init__(self, state: dict[str, Any]) -> None:
        from defectlab.training.anomaly import AnomalyModel

        self.model = AnomalyModel.from_dict(state)

    def score(self, images: Sequence[np.ndarray], *, heatmaps: bool) -> EngineOutput:
        output = self.model.predict(images, heatmaps=heatmaps)
        return EngineOutput(scores=np.asarray(output.scores, dtype=np.float64), heatmaps=output.heatmaps)


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
    raise InvalidInputError(f"models of task {task!r} cannot be used for prediction in this version of defectlab")
