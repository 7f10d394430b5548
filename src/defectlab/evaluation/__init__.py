"""Evaluation of a model on a test set: metrics in inspectors' terms and an HTML report.

``evaluate_predictions`` counts escapes and overkills and computes per-class
metrics and AUROC. ``write_report`` turns the result into one self-contained
``report.html``. ``to_display`` makes an 8-bit view of 16-bit pixels.
"""

from defectlab.evaluation.metrics import ClassMetrics, Curves, Evaluation, curves, evaluate_predictions
from defectlab.evaluation.report import ReportItem, write_report
from defectlab.evaluation.views import overlay_heatmap, to_display, to_thumbnail

__all__ = [
    "ClassMetrics",
    "Curves",
    "Evaluation",
    "ReportItem",
    "curves",
    "evaluate_predictions",
    "overlay_heatmap",
    "to_display",
    "to_thumbnail",
    "write_report",
]
