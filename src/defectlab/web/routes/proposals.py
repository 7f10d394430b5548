"""Routes for proposed labels: make them as a job, review them one at a time, and report how they fared.

An open blind proposal is returned without its label, regions and confidence,
so a page cannot show what the reviewer must not see.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from defectlab.proposals import (
    ACTIONS,
    SOURCES,
    list_proposals,
    next_proposal,
    proposal_report,
    refresh_due,
    review_proposal,
)
from defectlab.web.access import Labeler, acting
from defectlab.web.bodies import ACTING, Body, ImageRegion, Person
from defectlab.web.jobs import running_job, start_job
from defectlab.web.routes import WorkspaceParameter, error_responses
from defectlab.workspace import Workspace

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/projects/{project}/proposals", tags=["proposals"],
                   responses=error_responses(400, 401, 403, 404))


class ProposalRequest(Body):
    source: str = Field("auto", description="Where proposals come from.", json_schema_extra={"enum": list(SOURCES)})
    model_id: int | None = Field(None, description="The model to propose with; the project's newest when absent.")
    blind_share: float = Field(0.1, description="Share of proposals kept hidden as blind checks, 0 to 0.5.")


class Review(Body):
    """A person's decision on one proposal."""

    reviewer: Person | None = Field(None, description=ACTING)
    action: str = Field(description="`accept`, `correct` or `reject`.", json_schema_extra={"enum": list(ACTIONS)})
    class_name: str | None = Field(None, alias="class", description="The right class, for `correct`.")
    regions: list[ImageRegion] | None = Field(None, description="The right regions, for `correct`.")


@router.post("", status_code=202, summary="Propose labels for the project's unlabeled images, as a job")
def start_proposals(project: str, workspace: WorkspaceParameter, account: Labeler,
                    body: ProposalRequest | None = None) -> dict[str, Any]:
    """Give each unlabeled image a proposed label, replacing its open proposal. Follow the job with
    GET /api/jobs/{job_id}; its `result` has `proposed`, `blind`, `by_class`, `source` and `seconds`."""
    return start_job(workspace, "propose", project, (body or ProposalRequest()).model_dump(),
                     started_by=account.name)


@router.get("", summary="List proposals, least confident first")
def list_all(
    project: str,
    workspace: WorkspaceParameter,
    status: Annotated[str, Query(description="`open`, `accepted`, `corrected`, `rejected` or `all`.")] = "open",
) -> list[dict[str, Any]]:
    """Return proposals, each with `id`, `image_id`, `path`, `source`, `label`, `regions`, `confidence`, `blind`,
    `status`, `reviewer`, `answer` and `reviewed_at`."""
    return list_proposals(workspace, project, status=None if status == "all" else status)


@router.get("/next", summary="The open proposal that most needs a look, or null when none is left")
def read_next(project: str, workspace: WorkspaceParameter) -> dict[str, Any] | None:
    """Return the open proposal with the lowest confidence, with `remaining` (the number of open proposals)."""
    return next_proposal(workspace, project)


@router.get("/report", summary="How often proposals were right, blind-check agreement and reviewing pace")
def read_report(project: str, workspace: WorkspaceParameter) -> dict[str, Any]:
    """Return counts by status, the share right per proposed class, blind checks and their agreement,
    reviews an hour per reviewer, and `warnings` when proposals seem accepted without a look."""
    return proposal_report(workspace, project)


@router.post("/{proposal_id}/review", summary="Accept, correct or reject one proposal", responses=error_responses(409))
def review(project: str, proposal_id: int, body: Review, workspace: WorkspaceParameter,
           account: Labeler) -> dict[str, Any]:
    """Settle one proposal. `accept` makes the proposed label the image's label, `correct` stores `class` and
    `regions` instead (which is how a blind check is labeled), and `reject` leaves the image unlabeled. A
    proposal reviewed already, replaced by a newer one, or whose image was labeled since, is a conflict (409).

    When the labels have grown by half since the open proposals were made from features, new ones are made as
    a job; `refresh_job` is its id (null otherwise). Until it ends, the current proposals are served."""
    regions = [region.model_dump(by_alias=True, exclude_none=True) for region in body.regions or []] or None
    reviewed = review_proposal(workspace, project, proposal_id, reviewer=acting(account, body.reviewer, "reviewer"),
                               action=body.action, class_name=body.class_name, regions=regions)
    return {**reviewed, "refresh_job": _refresh(workspace, project, account.name)}


def _refresh(workspace: Workspace, project: str, started_by: str) -> int | None:
    """Start a proposal job when one is due and none is running; return its id, or None."""
    due = refresh_due(workspace, project)
    if due is None or running_job(workspace, project, "propose") is not None:
        return None
    options = {"source": due["source"], "blind_share": due["blind_share"]}
    job = start_job(workspace, "propose", project, options, started_by=started_by)
    logger.info("proposals of %s are made again from %d labeled images (the open ones learned from %d), job %d",
                project, due["labeled_images"], due["learned_from"], job["id"])
    return job["id"]
