"""Reviewing proposals: accept, correct or reject one at a time, blind checks, and how often proposals were right.

A proposal becomes a label only through a person: ``accept`` stores the
proposed label as the reviewer's, ``correct`` stores the reviewer's own label,
and ``reject`` leaves the image unlabeled. Training reads labels only, so an
open or rejected proposal never reaches a model.

Proposals are served least confident first, because those need a person's
look the most. An open proposal of an image that someone labeled meanwhile (on
the labeling page, say) is closed as ``superseded`` and not served, and a
newer run of ``make_proposals`` closes the open ones it replaces as
``replaced``. A blind
proposal is served without its label and regions, and the reviewer's label is
compared with it afterwards. When reviewers accept far more
proposals than blind checks confirm, they are probably accepting without
looking, and ``proposal_report`` warns about it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select

from defectlab.data.annotations import save_annotations
from defectlab.errors import ConflictError, InvalidInputError, NotFoundError
from defectlab.formats._layout import is_ok_folder
from defectlab.formats.records import OK_CLASS
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, Image, Project, Proposal

__all__ = ["ACTIONS", "RUBBER_STAMP_GAP", "list_proposals", "next_proposal", "proposal_report", "review_proposal"]

logger = logging.getLogger(__name__)

ACTIONS = ("accept", "correct", "reject")

RUBBER_STAMP_GAP = 0.15
"""How far the share of accepted proposals may exceed the share that blind checks confirm before a warning."""

MIN_BLIND_CHECKS = 5
"""Blind checks needed before their agreement is compared with the acceptance rate."""

_PAUSE_SECONDS = 300
"""A gap between two reviews longer than this is a pause and does not count as reviewing time."""


def list_proposals(workspace: Workspace, project_name: str, *, status: str | None = "open") -> list[dict[str, Any]]:
    """Return the project's proposals, least confident first; ``status`` None lists every status.

    Open blind proposals are listed without their label and regions.
    """
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        _supersede_labeled(session, project.id)
        query = select(Proposal, Image.path).join(Image, Image.id == Proposal.image_id).where(
            Proposal.project_id == project.id)
        if status is not None:
            query = query.where(Proposal.status == status)
        rows = session.execute(query.order_by(Proposal.confidence, Proposal.id)).all()
        return [_describe(proposal, path) for proposal, path in rows]


def next_proposal(workspace: Workspace, project_name: str) -> dict[str, Any] | None:
    """Return the open proposal that needs a person's look the most (the least confident), or None when none is left.

    The result also has ``remaining``: how many open proposals there are.
    """
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        _supersede_labeled(session, project.id)
        open_rows = select(Proposal, Image.path).join(Image, Image.id == Proposal.image_id).where(
            Proposal.project_id == project.id, Proposal.status == "open")
        row = session.execute(open_rows.order_by(Proposal.confidence, Proposal.id).limit(1)).first()
        if row is None:
            return None
        remaining = session.scalar(select(func.count()).select_from(Proposal).where(
            Proposal.project_id == project.id, Proposal.status == "open"))
        return {**_describe(*row), "remaining": remaining}


def review_proposal(workspace: Workspace, project_name: str, proposal_id: int, *, reviewer: str, action: str,
                    class_name: str | None = None, regions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Settle one open proposal.

    Args:
        reviewer: Who reviewed; the label is stored under this name.
        action: ``accept`` (the proposed label becomes the label), ``correct``
            (``class_name`` and ``regions`` become the label) or ``reject`` (the
            image stays unlabeled). A blind proposal cannot be accepted, because
            the reviewer did not see it: label it with ``correct``.
        class_name: The reviewer's class, for ``correct``.
        regions: The reviewer's regions, for ``correct`` (as ``save_annotations`` takes them).

    Returns:
        The proposal as ``list_proposals`` describes it, with its ``status``,
        ``answer`` and, for a blind check, ``agrees``.

    Raises:
        NotFoundError: The project or proposal does not exist.
        ConflictError: The proposal is no longer open, or someone labeled the image meanwhile.
        InvalidInputError: An unknown action, a correction without a class or
            regions, or a class the project does not have.
    """
    if action not in ACTIONS:
        raise InvalidInputError(f"action {action!r} is invalid; use one of {list(ACTIONS)}")
    if not reviewer.strip():
        raise InvalidInputError("reviewer is empty; give the name of the person reviewing")
    proposal, image_version, has_label = _open_proposal(workspace, project_name, proposal_id)
    if has_label and action != "reject":
        raise ConflictError(f"image {proposal['image_id']} ({proposal['path']}) was labeled since the proposal was "
                            "made; that label is kept, so reject this proposal or propose again")
    if action == "accept" and proposal["blind"]:
        raise InvalidInputError(f"proposal {proposal_id} is a blind check: its label was not shown, so it cannot be "
                                "accepted; give your own label with 'correct'")
    if action == "correct" and class_name is None and not regions:
        raise InvalidInputError("a correction needs the right class or regions; give --class (or regions)")

    answer = None
    if action == "accept":
        answer = proposal["stored_label"]
        save_annotations(workspace, project_name, proposal["image_id"], labeler=reviewer, version=image_version,
                         class_name=answer, regions=_accepted_regions(proposal["stored_regions"]))
    elif action == "correct":
        answer = OK_CLASS if class_name is not None and is_ok_folder(class_name) else class_name
        if answer is None:
            answer = str(regions[0].get("class"))
        save_annotations(workspace, project_name, proposal["image_id"], labeler=reviewer, version=image_version,
                         class_name=class_name, regions=regions)
    status = {"accept": "accepted", "reject": "rejected"}.get(action)
    if status is None:
        status = "accepted" if answer == proposal["stored_label"] and not regions else "corrected"
    with workspace.session() as session:
        stored = session.get(Proposal, proposal_id)
        stored.status, stored.reviewer, stored.answer = status, reviewer, answer
        stored.reviewed_at = datetime.now(timezone.utc)
        session.flush()
        path = session.get(Image, stored.image_id).path
        logger.info("proposal %d of %s %s by %s", proposal_id, project_name, status, reviewer)
        return _describe(stored, path)


def proposal_report(workspace: Workspace, project_name: str) -> dict[str, Any]:
    """Measure how the project's proposals fared with the people who reviewed them.

    Returns:
        ``open``, ``reviewed`` and ``by_status`` counts. ``by_class``: per proposed
        class, how many were reviewed and the share ``right`` (accepted, of those
        not rejected). ``blind``: the number of blind checks and the share that
        ``agree`` with their proposal. ``accepted_share``: of the proposals shown.
        ``reviewers``: per reviewer, reviews and ``per_hour``, with pauses longer
        than five minutes left out. ``warnings``: sentences for the reviewers.
    """
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        proposals = session.scalars(select(Proposal).where(Proposal.project_id == project.id)
                                    .order_by(Proposal.reviewed_at, Proposal.id)).all()
        reviewed = [p for p in proposals if p.status in ("accepted", "corrected", "rejected")]
        shown = [p for p in reviewed if not p.blind]
        blind = [p for p in reviewed if p.blind and p.answer is not None]
        accepted_share = _share(sum(p.status == "accepted" for p in shown), len(shown))
        agree_share = _share(sum(p.answer == p.label for p in blind), len(blind))
        report = {
            "project": project_name,
            "open": sum(p.status == "open" for p in proposals),
            "reviewed": len(reviewed),
            "by_status": {status: sum(p.status == status for p in proposals)
                          for status in ("open", "accepted", "corrected", "rejected", "superseded", "replaced")},
            "by_class": _by_class(shown),
            "blind": {"checks": len(blind), "agree": agree_share},
            "accepted_share": accepted_share,
            "reviewers": _pace(reviewed),
            "warnings": _warnings(accepted_share, agree_share, len(blind)),
        }
    return report


def _supersede_labeled(session: Any, project_id: int) -> None:
    """Close the open proposals of images that someone labeled meanwhile, as ``superseded``: their label is kept."""
    labeled = select(Annotation.image_id).join(Image, Image.id == Annotation.image_id).where(
        Image.project_id == project_id)
    stale = session.scalars(select(Proposal).where(Proposal.project_id == project_id, Proposal.status == "open",
                                                   Proposal.image_id.in_(labeled))).all()
    for proposal in stale:
        proposal.status = "superseded"
    if stale:
        session.flush()
        logger.info("%d open proposals superseded by labels given meanwhile", len(stale))


def _open_proposal(workspace: Workspace, project_name: str, proposal_id: int) -> tuple[dict[str, Any], int, bool]:
    """Return the open proposal (with its stored label), its image's version and whether the image has a label."""
    with workspace.session() as session:
        project: Project = workspace.get_project(session, project_name)
        proposal = session.get(Proposal, proposal_id)
        if proposal is None or proposal.project_id != project.id:
            raise NotFoundError(f"proposal {proposal_id} is not in project {project_name!r}; list the open ones "
                                f"with 'defectlab proposals list {project_name}'")
        image = session.get(Image, proposal.image_id)
        if proposal.status != "open":
            raise ConflictError(_closed_message(proposal))
        described = {**_describe(proposal, image.path), "stored_label": proposal.label,
                     "stored_regions": proposal.regions}
        return described, image.version, bool(image.annotations)


def _closed_message(proposal: Proposal) -> str:
    if proposal.status == "replaced":
        return (f"proposal {proposal.id} was replaced by a newer proposal for the same image, made from more "
                "labels; take the next open one")
    if proposal.status == "superseded":
        return f"image {proposal.image_id} was labeled since proposal {proposal.id} was made; take the next open one"
    return f"proposal {proposal.id} was already {proposal.status} by {proposal.reviewer}; take the next open one"


def _accepted_regions(regions: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Return the proposed regions as labels: class and shape, without the model's score."""
    if not regions:
        return None
    return [{key: value for key, value in region.items() if key != "score"} for region in regions]


def _describe(proposal: Proposal, path: str) -> dict[str, Any]:
    hidden = proposal.blind and proposal.status == "open"
    described = {
        "id": proposal.id, "image_id": proposal.image_id, "path": path, "source": proposal.source,
        "label": None if hidden else proposal.label, "regions": None if hidden else proposal.regions,
        "confidence": None if hidden else proposal.confidence, "blind": proposal.blind, "status": proposal.status,
        "reviewer": proposal.reviewer, "answer": proposal.answer,
        "reviewed_at": proposal.reviewed_at.isoformat() if proposal.reviewed_at else None,
    }
    if proposal.blind and proposal.answer is not None:
        described["agrees"] = proposal.answer == proposal.label
    return described


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _by_class(shown: list[Proposal]) -> dict[str, dict[str, Any]]:
    classes: dict[str, dict[str, Any]] = {}
    for proposal in shown:
        entry = classes.setdefault(proposal.label, {"reviewed": 0, "accepted": 0, "corrected": 0, "rejected": 0})
        entry["reviewed"] += 1
        entry[proposal.status] += 1
    for entry in classes.values():
        entry["right"] = _share(entry["accepted"], entry["reviewed"] - entry["rejected"])
    return classes


def _pace(reviewed: list[Proposal]) -> dict[str, dict[str, Any]]:
    """Count reviews per reviewer and how many an hour, from the time between consecutive reviews without pauses."""
    by_reviewer: dict[str, list[datetime]] = {}
    for proposal in reviewed:
        if proposal.reviewer and proposal.reviewed_at:
            by_reviewer.setdefault(proposal.reviewer, []).append(proposal.reviewed_at)
    pace = {}
    for reviewer, moments in by_reviewer.items():
        moments.sort()
        gaps = [(later - earlier).total_seconds() for earlier, later in zip(moments, moments[1:])]
        busy = sum(gap for gap in gaps if gap <= _PAUSE_SECONDS)
        counted = sum(1 for gap in gaps if gap <= _PAUSE_SECONDS)
        pace[reviewer] = {"reviews": len(moments), "per_hour": round(3600 * counted / busy, 1) if busy > 0 else None}
    return pace


def _warnings(accepted_share: float | None, agree_share: float | None, checks: int) -> list[str]:
    if accepted_share is None or agree_share is None or checks < MIN_BLIND_CHECKS:
        return []
    if accepted_share - agree_share <= RUBBER_STAMP_GAP:
        return []
    return [f"Reviewers accepted {accepted_share:.0%} of the proposals they saw, but on blind checks they agreed "
            f"with only {agree_share:.0%} of the proposals. Proposals are probably being accepted without a close "
            "look: review more slowly, or correct the labels the blind checks contradict."]
