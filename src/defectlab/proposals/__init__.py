"""Proposed labels for unlabeled images, and their review by a person before they become labels."""

from defectlab.proposals.making import BLIND_SHARE, SOURCES, make_proposals
from defectlab.proposals.refresh import refresh_due
from defectlab.proposals.review import ACTIONS, list_proposals, next_proposal, proposal_report, review_proposal

__all__ = ["ACTIONS", "BLIND_SHARE", "SOURCES", "list_proposals", "make_proposals", "next_proposal",
           "proposal_report", "refresh_due", "review_proposal"]
