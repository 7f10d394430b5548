"""The diagnosis of a model once its training job ends, gathered from the workspace and kept with the model.

The rules are in ``defectlab.evaluation.diagnosis``. Here their inputs are
collected: the counts and loss curves of the training result, the model's
predictions on its dev images, and the newest data check of the project. The
findings go into the training job's result and the model's summary, so the
training page and the model report show the same statements.
"""

from __future__ import annotations

import logging
from typing import Any

from defectlab.errors import InvalidInputError
from defectlab.evaluation.diagnosis import diagnose
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Model

__all__ = ["diagnose_trained_model"]

logger = logging.getLogger(__name__)


def diagnose_trained_model(workspace: Workspace, project_name: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    """Diagnose the model a training job registered, store the findings in its summary and return them.

    Args:
        result: The training result: ``model_id``, ``task``, ``counts`` and ``loss_curves``.
    """
    from defectlab.evaluation.runner import load_stored_model

    model_id = int(result["model_id"])
    _, images = load_stored_model(workspace, model_id)
    labels = {image.image_id: image.label for image in images}
    findings = diagnose(task=result["task"], counts=result["counts"], loss_curves=result.get("loss_curves"),
                        predictions=_dev_predictions(workspace, model_id),
                        suspicious=_newest_suspicious_labels(workspace, project_name, labels))
    rows = [finding.to_dict() for finding in findings]
    _store(workspace, model_id, rows)
    logger.info("diagnosis of model %d: %d findings (%s)", model_id, len(rows),
                ", ".join(finding.kind for finding in findings) or "none")
    return rows


def _dev_predictions(workspace: Workspace, model_id: int) -> tuple[list[str], Any, str] | None:
    """Return the model's class names, confusion matrix and ``dev`` on its dev images, or None without any."""
    from defectlab.evaluation.runner import evaluate_model

    try:
        run = evaluate_model(workspace, model_id, split="dev")
    except InvalidInputError:
        logger.info("model %d has no labeled dev images; the diagnosis leaves out its predictions", model_id)
        return None
    return list(run.evaluation.class_names), run.evaluation.confusion_matrix, "dev"


def _newest_suspicious_labels(workspace: Workspace, project_name: str, labels: dict[int, str | None]):  # noqa: ANN202
    """Return ``(flagged, labels, checked_at)`` of the newest data check that searched labels, or None."""
    from defectlab.web.jobs import SUCCEEDED, describe_job, list_jobs

    for job in list_jobs(workspace, project_name):
        if job["kind"] == "check" and job["status"] == SUCCEEDED and job["options"].get("labels", True):
            issues = describe_job(workspace, job["id"])["result"].get("issues", [])
            flagged = [issue for issue in issues if issue.get("kind") == "suspicious_label"]
            return flagged, labels, job["finished_at"]
    return None


def _store(workspace: Workspace, model_id: int, rows: list[dict[str, Any]]) -> None:
    with workspace.session() as session:
        model = session.get(Model, model_id)
        model.summary = {**model.summary, "diagnosis": rows}

