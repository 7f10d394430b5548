"""When to propose again: the open proposals were made from far fewer labels than the project has now.

Few-shot proposals improve quickly with the first labels and slowly later, so
a fixed number of reviews between runs is either too slow at the start or
wasteful at the end. Proposals are due again when the labeled images have
grown by ``REFRESH_GROWTH`` (a half) of those the open proposals learned from,
and by at least ``MIN_NEW_LABELS``. So a run from 30 labels is followed by
another after 20 reviews, and a run from 400 labels after 200. Only proposals
from features are made again by themselves. A model's proposals need a new
training run, which a person starts.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import func, select

from defectlab.proposals.making import BLIND_SHARE
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, Image, Proposal

__all__ = ["MIN_NEW_LABELS", "REFRESH_GROWTH", "refresh_due"]

REFRESH_GROWTH = 0.5
"""Growth of the labeled images, as a share of those the open proposals learned from, that makes new proposals due."""

MIN_NEW_LABELS = 20
"""New labeled images needed at least before proposals are due again."""


def refresh_due(workspace: Workspace, project_name: str) -> dict[str, Any] | None:
    """Return the settings of a new proposal run when one is due (see the module docstring), else None.

    Returns:
        ``source`` (``features``), ``blind_share`` (that of the open
        proposals), ``labeled_images`` (now) and ``learned_from`` (the labeled
        images the open proposals learned from); None when the project has no
        open proposal from features, or not enough new labels.

    Raises:
        NotFoundError: The project does not exist.
    """
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        newest = session.scalars(select(Proposal).where(Proposal.project_id == project.id, Proposal.status == "open")
                                 .order_by(Proposal.id.desc()).limit(1)).first()
        if newest is None or newest.source != "features" or newest.labeled_images is None:
            return None
        labeled = session.scalar(select(func.count(func.distinct(Annotation.image_id)))
                                 .join(Image, Image.id == Annotation.image_id)
                                 .where(Image.project_id == project.id, Image.excluded.is_(False)))
        learned_from = newest.labeled_images
        if labeled - learned_from < max(MIN_NEW_LABELS, math.ceil(REFRESH_GROWTH * learned_from)):
            return None
        blind_share = BLIND_SHARE if newest.blind_share is None else newest.blind_share
        return {"source": "features", "blind_share": blind_share, "labeled_images": labeled,
                "learned_from": learned_from}
