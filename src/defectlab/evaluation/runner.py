"""Evaluate a stored model on one split of its snapshot and write the HTML report."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from defectlab.data.pixels import StoredPixels
from defectlab.data.snapshot import SnapshotImage, load_snapshot
from defectlab.errors import InvalidInputError
from defectlab.evaluation.metrics import Evaluation, evaluate_predictions
from defectlab.evaluation.report import ReportItem, write_report
from defectlab.formats.records import OK_CLASS, SPLITS
from defectlab.models.artifact import load_artifact
from defectlab.prediction.predictor import ANOMALY_LABEL, Prediction, Predictor
from defectlab.training.autotune import UNUSED_SETTINGS
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Snapshot

__all__ = ["EvaluationRun", "evaluate_model", "load_stored_model"]

logger = logging.getLogger(__name__)

REPORTED_ERRORS = 24
"""Worst errors shown as thumbnails in the report."""


@dataclass
class EvaluationRun:
    """One evaluation: metrics, where the report is, and each image's prediction."""

    model_id: int
    split: str
    evaluation: Evaluation
    report_path: Path
    predictions: list[Prediction]
    recall_by_class: dict[str, float | None]
    regions: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        result = {
            "model_id": self.model_id,
            "split": self.split,
            "report": str(self.report_path),
            **self.evaluation.to_dict(),
            "recall_by_defect_class": self.recall_by_class,
        }
        if self.regions is not None:
            result["regions"] = self.regions
        return result


def load_stored_model(workspace: Workspace, model_id: int) -> tuple[dict[str, Any], list[SnapshotImage]]:
    """Return a stored model's artifact and the images of the snapshot it was trained from."""
    with workspace.session() as session:
        model = workspace.get_model(session, model_id)
        snapshot = session.get(Snapshot, model.snapshot_id)
        artifact = load_artifact(workspace.blobs.get(model.artifact_sha256), name=f"model {model_id}")
        return artifact, load_snapshot(workspace, snapshot).images


def evaluate_model(workspace: Workspace, model_id: int, *, split: str = "test",
                   report_dir: Path | None = None) -> EvaluationRun:
    """Predict the labeled images of one split of the model's snapshot and measure the results.

    Raises:
        InvalidInputError: The split is unknown or contains no labeled images.
        NotFoundError: The model does not exist.
    """
    if split not in SPLITS:
        raise InvalidInputError(f"split {split!r} is not valid; use one of: {', '.join(SPLITS)}")
    artifact, images = load_stored_model(workspace, model_id)
    chosen = [image for image in images if image.split == split and image.label is not None]
    if not chosen:
        raise InvalidInputError(
            f"model {model_id}'s snapshot has no labeled images in the {split} split; choose another with --split"
        )

    predictor = Predictor.from_artifact(artifact)
    pixels = StoredPixels(workspace.blobs, [i.sha256 for i in chosen], [i.path for i in chosen])
    predictions = predictor.predict(pixels, paths=[image.path for image in chosen])
    true_labels = [_true_label(image.label, predictor.task) for image in chosen]
    evaluation = _measure(predictor, true_labels, predictions)
    regions = None
    if predictor.task in ("segmentation", "detection"):
        from defectlab.evaluation.regions import measure_regions

        regions = measure_regions(workspace.blobs, artifact, chosen, pixels, predictions)

    folder = report_dir or workspace.root / "reports" / f"model-{model_id}-{split}"
    labeled = {index: _labeled_boxes(workspace, chosen[index]) for index in evaluation.error_indices[:REPORTED_ERRORS]}
    report_path = _report(folder, artifact, model_id, split, evaluation, predictor, pixels, true_labels, predictions,
                          labeled, regions)
    recall = _recall_by_class([image.label for image in chosen], predictions)
    _remember(workspace, model_id, split, evaluation)
    logger.info("evaluated model %d on %d %s images; report %s", model_id, len(chosen), split, report_path)
    return EvaluationRun(model_id, split, evaluation, report_path, predictions, recall, regions)


def _true_label(label: str, task: str) -> str:
    if task == "anomaly" and label != OK_CLASS:
        return ANOMALY_LABEL
    return label


def _measure(predictor: Predictor, true_labels: list[str], predictions: list[Prediction]) -> Evaluation:
    if predictor.task == "anomaly":
        class_names = [OK_CLASS, ANOMALY_LABEL]
    else:
        class_names = list(predictor.class_names)
        class_names += sorted(set(true_labels) - set(class_names))
    probabilities = None
    if predictions and predictions[0].probabilities is not None:
        probabilities = np.array([[p.probabilities.get(name, 0.0) for name in class_names] for p in predictions])
    return evaluate_predictions(
        class_names=class_names, true_labels=true_labels, pred_labels=[p.label for p in predictions],
        scores=np.array([p.score for p in predictions]), threshold=predictor.threshold,
        probabilities=probabilities,
    )


def _recall_by_class(labels: list[str], predictions: list[Prediction]) -> dict[str, float | None]:
    """Share of each defect class's images called defective, whatever class was predicted."""
    found, total = Counter(), Counter()
    for label, prediction in zip(labels, predictions):
        if label != OK_CLASS:
            total[label] += 1
            found[label] += int(prediction.is_defect)
    return {name: found[name] / total[name] for name in sorted(total)}


def _report(folder: Path, artifact: dict[str, Any], model_id: int, split: str, evaluation: Evaluation,
            predictor: Predictor, pixels: StoredPixels, true_labels: list[str],
            predictions: list[Prediction], labeled: dict[int, list[list[float]]],
            regions: dict[str, Any] | None = None) -> Path:
    from defectlab.evaluation.regions import region_lines

    worst = evaluation.error_indices[:REPORTED_ERRORS]
    heatmaps: dict[int, np.ndarray | None] = {index: None for index in worst}
    if predictor.task == "anomaly" and worst:
        redone = predictor.predict([pixels[i] for i in worst], heatmaps=True)
        heatmaps = {index: again.heatmap for index, again in zip(worst, redone)}
    items = [
        ReportItem(path=predictions[i].path, pixels=pixels[i], true_label=true_labels[i],
                   pred_label=predictions[i].label, score=predictions[i].score, heatmap=heatmaps[i],
                   labeled_boxes=labeled[i], predicted_boxes=_predicted_boxes(predictions[i]))
        for i in worst
    ]
    settings = {key: value for key, value in (artifact.get("settings") or {}).items()
                if key not in UNUSED_SETTINGS[predictor.task]}
    reasons = settings.pop("reasons", [])
    return write_report(
        folder, title=f"{artifact.get('project', 'project')}: model {model_id} on the {split} split",
        evaluation=evaluation, scores=np.array([p.score for p in predictions]),
        true_is_defect=np.array([label != OK_CLASS for label in true_labels]), items=items,
        loss_history=artifact.get("loss_history"), settings=settings, reasons=reasons,
        region_figures=region_lines(regions),
    )


def _labeled_boxes(workspace: Workspace, image: SnapshotImage) -> list[list[float]]:
    """Return the box around each labeled region; a mask gives one box per separate defect."""
    from defectlab.training.detection import regions_to_boxes

    names = ["ok", *sorted({region["class"] for region in image.regions})]
    return [list(box[1:]) for box in regions_to_boxes(image.regions, names, masks=workspace.blobs.get)]


def _predicted_boxes(prediction: Prediction) -> list[list[float]]:
    return [list(region["box"]) for region in (prediction.regions or prediction.boxes or [])]


def _remember(workspace: Workspace, model_id: int, split: str, evaluation: Evaluation) -> None:
    with workspace.session() as session:
        model = workspace.get_model(session, model_id)
        summary = dict(model.summary or {})
        evaluations = dict(summary.get("evaluations", {}))
        evaluations[split] = {key: value for key, value in evaluation.to_dict().items() if key != "error_indices"}
        summary["evaluations"] = evaluations
        model.summary = summary
