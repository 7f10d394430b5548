"""Consensus labeling: labeling tasks done blind by several labelers, their agreement, and a reviewer's settlement."""

from defectlab.consensus.intake import import_labeler_work
from defectlab.consensus.review import review_task, settle, settle_agreed, task_agreement
from defectlab.consensus.tasks import annotate, create_task, labeler_view, list_tasks, next_image

__all__ = ["annotate", "create_task", "import_labeler_work", "labeler_view", "list_tasks", "next_image", "review_task", "settle",
           "settle_agreed", "task_agreement"]
