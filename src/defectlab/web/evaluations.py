"""An evaluation for the model report page: the command line's metrics plus every image's outcome.

The report page opens the images behind a confusion-matrix cell or a score
histogram bar, so the result lists each evaluated image with its id, its true
and predicted class, its defect score and its outcome: ``escape`` (defective,
called OK), ``overkill`` (good, called defective), ``wrong_class`` (defective,
rejected under another defect class) or ``correct``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from defectlab.errors import NotFoundError
from defectlab.formats.records import OK_CLASS
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Model

__all__ = ["evaluate_for_report", "find_project_model"]


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
    rows = []
    for image, prediction in zip(chosen, run.predictions, strict=True):
        true = ANOMALY_LABEL if anomaly and image.label != OK_CLASS else image.label
        rows.append({"image_id": image.image_id, "path": image.path, "true": true, "predicted": prediction.label,
                     "score": round(float(prediction.score), 6), "is_defect": bool(prediction.is_defect),
                     "outcome": _outcome(true, prediction.label, prediction.is_defect)})
    findings = find_unpredicted_classes(run.evaluation.class_names, run.evaluation.confusion_matrix, split=split)
    return {**run.to_dict(), "images": rows, "diagnosis": [finding.to_dict() for finding in findings]}


def _outcome(true: str, predicted: str, is_defect: bool) -> str:
    if true != OK_CLASS and not is_defect:
        return "escape"
    if true == OK_CLASS and is_defect:
        return "overkill"
    if true != OK_CLASS and predicted != true:
        return "wrong_class"
    return "correct"
