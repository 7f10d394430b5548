"""Turn an artifact's saved state back into a model that scores pixels, one engine per task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from defectlab.errors import InvalidInputError
from defectlab.runtime.engine import EngineOutput, defect_scores

__all__ = ["Engine", "EngineOutput", "build_engine"]


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
