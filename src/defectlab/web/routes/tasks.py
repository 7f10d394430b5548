"""Routes for labeling tasks: the same images labeled blind by 2 to 5 labelers, their agreement, and review.

Blind means a labeler's routes (``next``, reading and writing their annotations)
return only that labeler's own work. Everyone's annotations appear together
only in the review routes.

A task name may contain '/', which reaches the router decoded even when sent
as %2F, so the task is a ``path`` parameter. The route that describes a task
comes last, because it would otherwise take the other routes' suffixes as part
of the task name.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from defectlab.consensus import (
    annotate,
    create_task,
    labeler_view,
    list_tasks,
    next_image,
    review_task,
    settle,
    settle_agreed,
    task_agreement,
)
from defectlab.consensus.tasks import describe_task, find_task
from defectlab.accounts import Account, has_role
from defectlab.errors import ForbiddenError
from defectlab.web.access import Labeler, Reviewer, Signed, acting
from defectlab.web.bodies import NewTask, SettleAgreed, Settlement, TaskAnnotation
from defectlab.web.routes import WorkspaceParameter, error_responses

__all__ = ["router"]

router = APIRouter(prefix="/projects/{project}/tasks", tags=["labeling tasks"],
                   responses=error_responses(400, 401, 403, 404))

LabelerName = Annotated[str | None, Query(max_length=100, description="The labeler whose work to read (default: the "
                                                                     "signed-in account); another's needs a reviewer.")]


@router.get("", summary="List a project's labeling tasks with each labeler's progress")
def list_project_tasks(project: str, workspace: WorkspaceParameter) -> list[dict[str, Any]]:
    return list_tasks(workspace, project)


@router.post("", status_code=201, summary="Create a labeling task", responses=error_responses(409))
def create_project_task(project: str, body: NewTask, workspace: WorkspaceParameter,
                        account: Reviewer) -> dict[str, Any]:
    """Hand the same images to 2 to 5 labelers, in one shared shuffled order."""
    return create_task(workspace, project, body.name, body.labelers,
                       created_by=acting(account, body.created_by, "created_by"),
                      
                       image_ids=body.image_ids, unlabeled=body.unlabeled, count=body.count, seed=body.seed)


@router.get("/{task:path}/next", summary="The labeler's next image to label")
def read_next_image(project: str, task: str, workspace: WorkspaceParameter, account: Signed,
                    labeler: LabelerName = None) -> dict[str, Any] | None:
    """Return `image_id`, `path`, `width`, `height`, `position`, `images` and `left`, or null when the labeler is
    done. Nothing about other labelers' work or the image's current label is returned."""
    return next_image(workspace, project, task, _whose(account, labeler))


@router.get("/{task:path}/images/{image_id}/annotations", summary="The labeler's own annotations of one task image")
def read_annotations(project: str, task: str, image_id: int, workspace: WorkspaceParameter, account: Signed,
                     labeler: LabelerName = None) -> list[dict[str, Any]]:
    return labeler_view(workspace, project, task, image_id, _whose(account, labeler))


@router.put("/{task:path}/images/{image_id}/annotations", summary="Store the labeler's annotation of one task image")
def put_annotations(project: str, task: str, image_id: int, body: TaskAnnotation,
                    workspace: WorkspaceParameter, account: Labeler) -> list[dict[str, Any]]:
    """Replace what the labeler gave the image before with either `class` for the whole image (`ok` when it has
    no defect) or `regions`."""
    return annotate(workspace, project, task, image_id, acting(account, body.labeler, "labeler"),
                    class_name=body.class_name,
                    regions=body.region_dicts())


@router.get("/{task:path}/agreement", summary="Agreement between the task's labelers")
def read_task_agreement(project: str, task: str, workspace: WorkspaceParameter) -> dict[str, Any]:
    """Return `task` (progress), `classes` (alpha, kappa, per labeler and per image on image classes) and, where
    labelers drew regions, `regions`."""
    return task_agreement(workspace, project, task)


@router.get("/{task:path}/review", summary="Every task image with all labelers' annotations and its decision")
def read_review(project: str, task: str, workspace: WorkspaceParameter) -> list[dict[str, Any]]:
    """Return unsettled images first, least agreed first within them."""
    return review_task(workspace, project, task)


@router.post("/{task:path}/images/{image_id}/settle", summary="Settle one task image")
def settle_image(project: str, task: str, image_id: int, body: Settlement,
                 workspace: WorkspaceParameter, account: Reviewer) -> dict[str, Any]:
    """Make `class` (or `labeler`'s annotation) the image's label, or with `ambiguous` make the image a
    borderline example of the class in the defect book. Return the decision."""
    return settle(workspace, project, task, image_id, reviewer=acting(account, body.reviewer, "reviewer"),
                  class_name=body.class_name,
                  labeler=body.labeler, ambiguous=body.ambiguous, note=body.note)


@router.post("/{task:path}/settle-agreed", summary="Settle every image all the task's labelers labeled alike")
def settle_agreed_images(project: str, task: str, body: SettleAgreed, workspace: WorkspaceParameter,
                         account: Reviewer) -> dict[str, int]:
    """Return how many images were `settled` and how many are `left` for a reviewer."""
    return settle_agreed(workspace, project, task, reviewer=acting(account, body.reviewer, "reviewer"))


@router.get("/{task:path}", summary="Describe one labeling task")
def read_task(project: str, task: str, workspace: WorkspaceParameter) -> dict[str, Any]:
    """Return `name`, `labelers`, `images`, `created_by`, `created_at`, `progress` per labeler and `settled`."""
    with workspace.session() as session:
        return describe_task(session, find_task(workspace, session, project, task))


def _whose(account: Account, labeler: str | None) -> str:
    """Return the labeler whose blind work to read: the account's own, or another's for a reviewer.

    Raises:
        ForbiddenError: A labeler or viewer asks for someone else's work, which would break the blind.
    """
    if labeler is None or labeler == account.name:
        return account.name
    if not has_role(account, "reviewer"):
        raise ForbiddenError(f"labeling tasks are blind: {account.name!r} may read only their own work, not "
                             f"{labeler!r}'s; a reviewer sees everyone's in the task's review")
    return labeler
