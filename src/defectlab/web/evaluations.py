"""An evaluation for the model report page: the command line's metrics plus every image's outcome.

The report page opens the images behind a confusion-matrix cell or a score
histogram bar, so the result lists each evaluated image with its id, its true
and predicted class, its defect score and its outcome: ``escape`` (defective,
called OK), ``overkill`` (good, called defective), ``wrong_class`` (defective,
rejected under another defect class) or ``correct``. To draw prediction and
label over each image, an image also has its labeled and predicted boxes, and
for an anomaly model a coarse heatmap. The result also has the points of the
precision-recall curve of the defect scores.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import select

from defectlab.errors import InvalidInputError, NotFoundError
from defectlab.formats.records import OK_CLASS
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Model

__all__ = ["HEATMAP_CELLS", "OUTCOMES", "coarse_heatmap", "evaluate_for_report", "evaluated_images",
           "find_project_model", "precision_recall_points", "select_evaluated"]

OUTCOMES = ("escape", "overkill", "wrong_class", "correct")
"""Outcomes of one evaluated image: a defective image called OK, a good image called defective, a defective image
rejected under another defect class, or the right call."""

HEATMAP_CELLS = 32
"""Cells on the long side of the heatmap each evaluated image carries; enough to show where, small enough for JSON."""

_HEATMAP_BATCH = 16  # full-size heatmaps of one batch are in memory at once


def find_project_model(workspace: Workspace, project_name: str, model_id: int) -> None:
    """Check that a model belongs to a project.

    Raises:
        NotFoundError: The project does not exist, or the model is not one of its models.
    """
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        found = session.scalar(select(Model.id).where(Model.id == model_id, Model.project_id == project.id))
    if found is None:
        raise NotFoundError(f"model {model_id} is not a model of project {project_name!r}; list them with "
                            f"GET /api/projects/{project_name}/models")


def evaluate_for_report(workspace: Workspace, project_name: str, model_id: int, split: str) -> dict[str, Any]:
    """Evaluate a model on one split of its snapshot; return the metrics and ``images`` with their outcomes.

    Raises:
        InvalidInputError: The split is unknown or contains no labeled images.
        NotFoundError: The model is not one of the project's models.
    """
    from defectlab.evaluation.diagnosis import find_unpredicted_classes
    from defectlab.evaluation.runner import evaluate_model, load_stored_model
    from defectlab.prediction.predictor import ANOMALY_LABEL

    find_project_model(workspace, project_name, model_id)
    run = evaluate_model(workspace, model_id, split=split)

    # evaluate_model predicts the same images, in the same order: the split's labeled images.
    artifact, images = load_stored_model(workspace, model_id)
    chosen = [image for image in images if image.split == split and image.label is not None]
    anomaly = run.evaluation.class_names == [OK_CLASS, ANOMALY_LABEL]
    heatmaps = _coarse_heatmaps(workspace, artifact, chosen) if anomaly else [None] * len(chosen)
    rows = []
    for image, prediction, heatmap in zip(chosen, run.predictions, heatmaps, strict=True):
        true = ANOMALY_LABEL if anomaly and image.label != OK_CLASS else image.label
        rows.append({"image_id": image.image_id, "path": image.path, "true": true, "predicted": prediction.label,
                     "score": round(float(prediction.score), 6), "is_defect": bool(prediction.is_defect),
                     "outcome": _outcome(true, prediction.label, prediction.is_defect),
                     "width": image.width, "height": image.height,
                     "labeled_boxes": _labeled_boxes(workspace, image), "predicted_boxes": _predicted_boxes(prediction),
                     "heatmap": heatmap})
    findings = find_unpredicted_classes(run.evaluation.class_names, run.evaluation.confusion_matrix, split=split)
    return {**run.to_dict(), "images": rows, "diagnosis": [finding.to_dict() for finding in findings],
            "precision_recall": _precision_recall_part(rows)}


def evaluated_images(workspace: Workspace, project_name: str, model_id: int) -> dict[int, dict[str, Any]]:
    """Return the images of the model's newest finished evaluation by id, each with ``outcome``, ``score``,
    ``predicted``, ``true`` and ``split``.

    Raises:
        NotFoundError: The model is not one of the project's models.
        InvalidInputError: The model has no finished evaluation yet.
    """
    from defectlab.web.jobs import SUCCEEDED, list_jobs

    find_project_model(workspace, project_name, model_id)
    for job in list_jobs(workspace, project_name):
        if job["kind"] == "evaluate" and job["status"] == SUCCEEDED and job["options"].get("model_id") == model_id:
            return _images_of_evaluation(workspace, job["id"])
    raise InvalidInputError(f"model {model_id} has no finished evaluation yet, so its outcomes cannot filter images; "
                            "evaluate it on its report page first")


@functools.lru_cache(maxsize=16)
def _images_of_evaluation(workspace: Workspace, job_id: int) -> dict[int, dict[str, Any]]:
    """Read a finished evaluation's images once; a succeeded job's result never changes, so it can be kept."""
    from defectlab.web.jobs import describe_job

    result = describe_job(workspace, job_id)["result"]
    return {row["image_id"]: {"outcome": row["outcome"], "score": row["score"], "predicted": row["predicted"],
                              "true": row["true"], "split": result["split"]} for row in result["images"]}


def select_evaluated(evaluated: dict[int, dict[str, Any]], *, outcome: str | None = None,
                     score_min: float | None = None, score_max: float | None = None) -> frozenset[int]:
    """Return the ids of the evaluated images with this outcome and a score in ``[score_min, score_max]``.

    Raises:
        InvalidInputError: The outcome is unknown, a bound is not a finite number, or ``score_min`` is above
            ``score_max``.
    """
    if outcome is not None and outcome not in OUTCOMES:
        raise InvalidInputError(f"outcome {outcome!r} is not known; use one of: {', '.join(OUTCOMES)}")
    for name, bound in (("score_min", score_min), ("score_max", score_max)):
        if bound is not None and not math.isfinite(bound):
            raise InvalidInputError(f"{name} is {bound}; give a finite number, such as 0.5")
    if score_min is not None and score_max is not None and score_min > score_max:
        raise InvalidInputError(f"score_min {score_min} is above score_max {score_max}; swap them or widen the range")

    low = -math.inf if score_min is None else score_min
    high = math.inf if score_max is None else score_max
    return frozenset(image_id for image_id, row in evaluated.items()
                     if (outcome is None or row["outcome"] == outcome) and low <= row["score"] <= high)


def precision_recall_points(true_is_defect: Sequence[bool], scores: Sequence[float],
                            called_defective: Sequence[bool]) -> dict[str, Any]:
    """Return the precision-recall curve of defect scores and the point the model's threshold chose.

    Args:
        true_is_defect: Per image, whether its label is a defect.
        scores: Per image, the defect score; higher means more likely defective.
        called_defective: Per image, whether the model called it defective.

    Returns:
        ``recall``, ``precision`` and ``thresholds`` (rising) as scikit-learn's
        ``precision_recall_curve`` returns them. Its last point is recall 0 and
        precision 1, with no threshold. ``chosen`` has the ``recall`` and
        ``precision`` of the model's own calls, with precision None when it
        called nothing defective.

    Raises:
        InvalidInputError: The images are not a mix of good and defective ones.
    """
    from defectlab.evaluation.metrics import curves

    truth = np.asarray(true_is_defect, dtype=bool)
    called = np.asarray(called_defective, dtype=bool)
    found = curves(truth, np.asarray(scores, dtype=np.float64))

    caught = int(np.sum(truth & called))
    chosen = {"recall": caught / int(truth.sum()),
              "precision": caught / int(called.sum()) if called.any() else None}
    return {"recall": [round(float(value), 6) for value in found.recall],
            "precision": [round(float(value), 6) for value in found.precision],
            "thresholds": [round(float(value), 6) for value in found.pr_thresholds], "chosen": chosen}


def coarse_heatmap(heatmap: np.ndarray, *, cells: int = HEATMAP_CELLS) -> dict[str, Any]:
    """Shrink a heatmap to at most ``cells`` cells on its long side, each the maximum of the pixels it covers.

    The maximum keeps a defect a few pixels wide visible in its cell, where a mean would wash it out.

    Args:
        heatmap: ``(H, W)`` per-pixel scores.

    Returns:
        ``cell``: the side of a cell in image pixels (cells at the right and
        bottom edges may be cut short), and ``values``: rows of cells, top row
        first, rounded to 2 decimals.
    """
    height, width = heatmap.shape
    step = max(1, -(-max(height, width) // cells))
    rows = []
    for top in range(0, height, step):
        rows.append([round(float(heatmap[top:top + step, left:left + step].max()), 2) for left in range(0, width, step)])
    return {"cell": step, "values": rows}


def _precision_recall_part(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the curve of the evaluated images, or ``reason`` when the split has only good or only defective ones."""
    truth = [row["true"] != OK_CLASS for row in rows]
    try:
        return precision_recall_points(truth, [row["score"] for row in rows], [row["is_defect"] for row in rows])
    except InvalidInputError:
        kind = "defective" if all(truth) else "good"
        return {"reason": f"All {len(rows)} images of this split are {kind}, so precision and recall of defect "
                          "scores cannot be traded off here; evaluate a split with both kinds."}


def _coarse_heatmaps(workspace: Workspace, artifact: dict[str, Any], images: list) -> list[dict[str, Any] | None]:
    """Predict the images again with heatmaps, a batch at a time, and return each heatmap coarsened.

    NOTE: this doubles the prediction time of an anomaly evaluation, because ``evaluate_model`` keeps no
    heatmaps; a heatmap option there would predict once.
    """
    from defectlab.data.pixels import StoredPixels
    from defectlab.prediction.predictor import Predictor

    predictor = Predictor.from_artifact(artifact)
    coarse: list[dict[str, Any] | None] = []
    for start in range(0, len(images), _HEATMAP_BATCH):
        batch = images[start:start + _HEATMAP_BATCH]
        pixels = StoredPixels(workspace.blobs, [image.sha256 for image in batch], [image.path for image in batch])
        for prediction in predictor.predict(pixels, heatmaps=True):
            coarse.append(None if prediction.heatmap is None else coarse_heatmap(prediction.heatmap))
    return coarse


def _labeled_boxes(workspace: Workspace, image: Any) -> list[dict[str, Any]]:
    """Return the box around each labeled region, with its class; a mask gives one box per separate defect."""
    from defectlab.training.detection import regions_to_boxes

    names = [OK_CLASS, *sorted({region["class"] for region in image.regions})]
    return [{"class": names[box[0]], "box": [round(float(value), 1) for value in box[1:]]}
            for box in regions_to_boxes(image.regions, names, masks=workspace.blobs.get)]


def _predicted_boxes(prediction: Any) -> list[dict[str, Any]]:
    return [{"class": region.get("class"), "box": [round(float(value), 1) for value in region["box"]],
             "counts": bool(region.get("counts", True))}
            for region in (prediction.regions or prediction.boxes or [])]


def _outcome(true: str, predicted: str, is_defect: bool) -> str:
    if true != OK_CLASS and not is_defect:
        return "escape"
    if true == OK_CLASS and is_defect:
        return "overkill"
    if true != OK_CLASS and predicted != true:
        return "wrong_class"
    return "correct"
