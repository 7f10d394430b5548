"""Routes for jobs: the data check and training run in a worker process, and the result is read when the job is done."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from defectlab.data.summary import summarize_models
from defectlab.errors import InvalidInputError
from defectlab.web.access import Reviewer
from defectlab.web.bodies import CheckRequest, EvaluationRequest, TrainRequest
from defectlab.web.evaluations import find_project_model
from defectlab.web.jobs import describe_job, list_jobs, start_job
from defectlab.web.routes import WorkspaceParameter, error_responses

__all__ = ["router"]

router = APIRouter(tags=["jobs"], responses=error_responses(400, 401, 403, 404))


@router.post("/projects/{project}/checks", status_code=202, summary="Start a data check of a project as a job")
def start_check(project: str, workspace: WorkspaceParameter, account: Reviewer,
                body: CheckRequest | None = None) -> dict[str, Any]:
    """Look for suspicious labels, outliers, duplicates, leakage, imaging problems and thin coverage. It can
    take minutes on a large project, so it runs as a job: follow it with GET /api/jobs/{job_id}."""
    options = (body or CheckRequest()).model_dump()
    return start_job(workspace, "check", project, options, started_by=account.name)


@router.post("/projects/{project}/training", status_code=202, summary="Start training a model of a project as a job")
def start_training(project: str, workspace: WorkspaceParameter, account: Reviewer,
                   body: TrainRequest | None = None) -> dict[str, Any]:
    """Train on the project's labeled images with the auto-tuner's settings (or `settings` in their place). The
    job's `progress` shows how far it is, with `loss_curves` once an epoch has ended; once it succeeded, its
    `result` has `model_id`, `threshold`, `counts`, `seconds`, the `settings` used, `loss_curves` and
    `diagnosis`: findings in plain words (`kind`, `message`, `details`) about thin classes, overfitting, classes
    never predicted on the dev images and suspicious labels from the newest data check (null, with
    `diagnosis_error` saying why, when it could not be made)."""
    from defectlab.training.autotune import validate_overrides

    options = (body or TrainRequest()).model_dump(exclude_none=True)
    validate_overrides(options.get("settings") or {})
    return start_job(workspace, "train", project, options, started_by=account.name)


@router.get("/training/settings", summary="The training settings a person may set, with their safe ranges")
def read_training_settings() -> list[dict[str, Any]]:
    """Return each numeric setting's `name`, `min`, `max` (inclusive) and whether it is an `integer`. A setting
    left out of a training request keeps the auto-tuner's value."""
    from defectlab.training.autotune import SETTING_RANGES

    return [{"name": name, "min": low, "max": high, "integer": isinstance(low, int) and isinstance(high, int)}
            for name, (low, high) in SETTING_RANGES.items()]


@router.get("/projects/{project}/models", summary="List a project's models, oldest first")
def list_models(project: str, workspace: WorkspaceParameter) -> list[dict[str, Any]]:
    """Return each model's `id`, `task`, `created_at`, `snapshot_id`, `threshold`, `class_names`, `evaluations`,
    `loss_curves` and `diagnosis`. The loss curves list each loss per epoch, such as `train` and `dev`; anomaly
    models have none, because they train without epochs. The diagnosis contains the findings of the model's
    training job and is null for a model trained outside one."""
    return summarize_models(workspace, project)


@router.post("/projects/{project}/models/{model_id}/evaluations", status_code=202,
             summary="Start evaluating a model on one split as a job")
def start_evaluation(project: str, model_id: int, workspace: WorkspaceParameter, account: Reviewer,
                     body: EvaluationRequest | None = None) -> dict[str, Any]:
    """Predict the split's labeled images and measure the model. Once the job succeeded, its `result` has the
    metrics of `defectlab evaluate` (escape and overkill rates, `per_class`, `confusion_matrix` with rows as true
    and columns as predicted `class_names`) and `images`: each evaluated image with `image_id`, `path`,
    `true`, `predicted`, `score`, `outcome` (`escape`, `overkill`, `wrong_class` or `correct`), `width`,
    `height`, `labeled_boxes` and `predicted_boxes` (`class`, `box` in pixels) and, for an anomaly model, a coarse
    `heatmap` (`cell` size in pixels, `values` by row). It also has `precision_recall` (`recall`, `precision`,
    `thresholds` and the model's own point `chosen`, or a `reason` when the split is all good or all defective)
    and `diagnosis`: a finding per class with images in the split that the model never predicted."""
    request = body or EvaluationRequest()
    if request.split not in ("train", "dev", "test"):
        raise InvalidInputError(f"split {request.split!r} is not valid; use one of: train, dev, test")
    find_project_model(workspace, project, model_id)
    return start_job(workspace, "evaluate", project, {"model_id": model_id, "split": request.split},
                     started_by=account.name)


@router.get("/jobs", summary="List jobs, newest first")
def list_all_jobs(
    workspace: WorkspaceParameter,
    project: Annotated[str | None, Query(description="Only this project's jobs.")] = None,
) -> list[dict[str, Any]]:
    """Return each job as GET /api/jobs/{job_id} does, without `result`."""
    return list_jobs(workspace, project)


@router.get("/jobs/{job_id}", summary="A job's status and, once it succeeded, its result")
def read_job(job_id: int, workspace: WorkspaceParameter) -> dict[str, Any]:
    """Return the job, whose `status` is `running`, `succeeded` or `failed`. A running job may have `progress`
    (`done`, `total`, `message`, `seconds`). A failed job has `error`; a succeeded one has `result`
    (for a check, the report: `counts`, `issues` worst first within each kind, and `notes`). A job whose worker
    process was killed reads as failed."""
    return describe_job(workspace, job_id)
