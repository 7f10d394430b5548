"""Draw the evaluation report's charts as PNG bytes.

Each figure is a ``matplotlib.figure.Figure`` with its own Agg canvas. Going
through ``pyplot`` would pick a global backend and keep every figure alive in
its registry, which a library imported by a server must not do.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from defectlab.errors import InvalidInputError
from defectlab.evaluation.metrics import Curves, Evaluation

__all__ = [
    "plot_confusion_matrix",
    "plot_loss_curves",
    "plot_ranking_curves",
    "plot_score_histogram",
]

DPI = 110
GOOD_COLOUR = "#4477aa"
DEFECT_COLOUR = "#cc6677"
THRESHOLD_COLOUR = "#222222"
MAX_BINS = 40


def plot_confusion_matrix(matrix: list[list[int]], class_names: list[str]) -> bytes:
    """Draw the confusion matrix with counts, coloured by share of each true class.

    Colouring by row share keeps a rare class's errors visible next to a
    common class.

    Args:
        matrix: ``(C, C)`` counts, rows true and columns predicted.
        class_names: The C class names in matrix order.

    Returns:
        PNG image bytes.
    """
    counts = np.asarray(matrix, dtype=np.int64)
    row_totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_totals, out=np.zeros(counts.shape), where=row_totals > 0)
    side = max(3.8, 0.75 * len(class_names) + 2.2)
    figure = _new_figure(side + 1.0, side)
    axes = figure.add_subplot()

    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    _annotate_cells(axes, counts, shares)
    axes.set_xticks(range(len(class_names)), class_names, rotation=35, ha="right")
    axes.set_yticks(range(len(class_names)), class_names)
    axes.set_xlabel("Predicted class")
    axes.set_ylabel("True class")
    figure.colorbar(image, ax=axes, label="Share of the true class's images", shrink=0.8)
    return _to_png(figure)


def plot_score_histogram(scores: np.ndarray, true_is_defect: np.ndarray, threshold: float) -> bytes:
    """Draw histograms of the defect scores of good and defective images.

    Args:
        scores: ``(N,)`` finite defect scores.
        true_is_defect: ``(N,)`` bool, True for defective images.
        threshold: Drawn as a vertical line. Images above it are called
            defective.

    Returns:
        PNG image bytes.
    """
    edges = _bin_edges(scores, threshold)
    figure = _new_figure(7.0, 3.6)
    axes = figure.add_subplot()

    good, defective = scores[~true_is_defect], scores[true_is_defect]
    axes.hist(good, bins=edges, color=GOOD_COLOUR, alpha=0.65, label=f"Good ({good.size})")
    axes.hist(defective, bins=edges, color=DEFECT_COLOUR, alpha=0.65, label=f"Defective ({defective.size})")
    axes.axvline(threshold, color=THRESHOLD_COLOUR, linestyle="--", linewidth=1.5, label=f"Threshold {threshold:.4g}")
    labels = axes.get_xaxis_transform()
    axes.text(threshold, 1.01, "called OK  ", transform=labels, ha="right", va="bottom", fontsize=9)
    axes.text(threshold, 1.01, "  called defective", transform=labels, ha="left", va="bottom", fontsize=9)
    axes.set_xlabel("Defect score")
    axes.set_ylabel("Images")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(frameon=False, fontsize=9)
    return _to_png(figure)


def plot_ranking_curves(curves: Curves, evaluation: Evaluation) -> bytes:
    """Draw the precision-recall and ROC curves, marking the threshold in use.

    Args:
        curves: Curves of the same test set as ``evaluation``.
        evaluation: Supplies the point where the threshold operates, AUROC
            and average precision.

    Returns:
        PNG image bytes.

    Raises:
        InvalidInputError: When ``evaluation`` has no AUROC because the test
            set lacks good or defective images.
    """
    if evaluation.auroc is None or evaluation.average_precision is None:
        raise InvalidInputError(
            f"Cannot draw ranking curves: {evaluation.undefined.get('auroc', 'AUROC is missing.')}"
        )

    figure = _new_figure(9.0, 4.0)
    pr_axes, roc_axes = figure.subplots(1, 2)
    recall, precision, overkill_rate = _operating_point(evaluation)

    pr_axes.plot(curves.recall, curves.precision, drawstyle="steps-post", color=DEFECT_COLOUR)
    pr_axes.axhline(
        evaluation.defective / evaluation.images, color="grey", linestyle=":", linewidth=1, label="Random scores"
    )
    pr_axes.plot([recall], [precision], "o", color=THRESHOLD_COLOUR, label="Threshold in use")
    _label_axes(pr_axes, f"Precision-recall, AP {evaluation.average_precision:.3f}", legend_corner="lower left")
    pr_axes.set_xlabel("Recall (share of defective images rejected)")
    pr_axes.set_ylabel("Precision (share of rejects that are defective)")

    roc_axes.plot(curves.false_positive_rate, curves.true_positive_rate, drawstyle="steps-post", color=DEFECT_COLOUR)
    roc_axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="Random scores")
    roc_axes.plot([overkill_rate], [recall], "o", color=THRESHOLD_COLOUR, label="Threshold in use")
    _label_axes(roc_axes, f"ROC, AUROC {evaluation.auroc:.3f}", legend_corner="lower right")
    roc_axes.set_xlabel("Overkill rate")
    roc_axes.set_ylabel("Recall (1 - escape rate)")
    return _to_png(figure)


def plot_loss_curves(loss_history: dict[str, list[float]]) -> bytes:
    """Draw one loss curve per entry, such as ``train`` and ``dev``, over epochs.

    Args:
        loss_history: Curve name to its loss per epoch, epoch 1 first.

    Returns:
        PNG image bytes.
    """
    figure = _new_figure(7.0, 3.4)
    axes = figure.add_subplot()

    for name, losses in loss_history.items():
        epochs = np.arange(1, len(losses) + 1)
        axes.plot(epochs, losses, marker="o" if len(losses) <= 30 else None, markersize=3, label=name)
    axes.set_xlabel("Epoch")
    axes.set_ylabel("Loss")
    axes.grid(alpha=0.3)
    axes.legend(frameon=False, fontsize=9)
    return _to_png(figure)


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _to_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # Matplotlib 3.11 writes its web address into a "Software" text chunk unless told not to.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _annotate_cells(axes: Axes, counts: np.ndarray, shares: np.ndarray) -> None:
    size = 11 if counts.shape[0] <= 6 else 8
    for row in range(counts.shape[0]):
        for column in range(counts.shape[1]):
            colour = "white" if shares[row, column] > 0.55 else "black"
            axes.text(column, row, str(counts[row, column]), ha="center", va="center", color=colour, fontsize=size)


def _bin_edges(scores: np.ndarray, threshold: float) -> np.ndarray:
    low = min(float(scores.min()), threshold)
    high = max(float(scores.max()), threshold)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    bins = int(np.clip(scores.size // 4, 10, MAX_BINS))
    return np.linspace(low, high, bins + 1)


def _operating_point(evaluation: Evaluation) -> tuple[float, float, float]:
    """Return recall, precision and overkill rate of defect vs ok at the threshold in use."""
    rejected_defective = evaluation.defective - evaluation.escapes
    rejected = rejected_defective + evaluation.overkills
    precision = rejected_defective / rejected if rejected else 1.0
    return 1.0 - (evaluation.escape_rate or 0.0), precision, evaluation.overkill_rate or 0.0


def _label_axes(axes: Axes, title: str, *, legend_corner: str) -> None:
    axes.set_title(title, fontsize=10)
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(-0.02, 1.05)
    axes.grid(alpha=0.3)
    axes.legend(frameon=False, fontsize=9, loc=legend_corner)
