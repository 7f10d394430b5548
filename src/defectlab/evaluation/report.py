"""Write an evaluation as one self-contained HTML page for quality engineers.

The page leads with the escape rate and overkill rate as counts of images,
and the threshold. Charts follow: the score histogram and the confusion
matrix, then the worst errors as thumbnails. Per-class metrics, the
precision-recall and ROC curves, the loss curves and the settings with the
reasons behind them come last.

Charts and thumbnails are embedded as base64 PNG and the styles are inline,
so the file opens offline and can be mailed as it is. Jinja2 escapes every
value taken from the data, such as paths and class names.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from PIL import Image

from defectlab.errors import InvalidInputError
from defectlab.evaluation.metrics import Evaluation, curves
from defectlab.evaluation.plots import (
    plot_confusion_matrix,
    plot_loss_curves,
    plot_ranking_curves,
    plot_score_histogram,
)
from defectlab.evaluation.views import outline_boxes, overlay_heatmap, to_display, to_thumbnail

__all__ = ["REPORT_FILE_NAME", "ReportItem", "write_report"]

logger = logging.getLogger(__name__)

REPORT_FILE_NAME = "report.html"
THUMBNAIL_SIDE = 160
"""Maximum length of an error thumbnail's longer side, in pixels."""

_MISSING = "—"


@dataclass(frozen=True)
class ReportItem:
    """One test image shown as a thumbnail in the report.

    Attributes:
        path: Image path relative to the project, shown as text.
        pixels: ``(H, W)`` or ``(H, W, 3)``, ``uint8`` or ``uint16``, as
            decoded. ``uint16`` is contrast-stretched for display.
        true_label: True class.
        pred_label: Predicted class.
        score: Defect score of the image.
        heatmap: Optional ``(H, W)`` finite per-pixel defect score, the size
            of ``pixels``, drawn in colour over the thumbnail.
        labeled_boxes: Boxes of the labeled regions, outlined in green.
        predicted_boxes: Boxes of the predicted regions, outlined in red.
    """

    path: str
    pixels: np.ndarray
    true_label: str
    pred_label: str
    score: float
    heatmap: np.ndarray | None = None
    labeled_boxes: list[list[float]] = field(default_factory=list)
    predicted_boxes: list[list[float]] = field(default_factory=list)


def write_report(
    out_dir: Path,
    *,
    title: str,
    evaluation: Evaluation,
    scores: np.ndarray,
    true_is_defect: np.ndarray,
    items: Sequence[ReportItem],
    loss_history: Mapping[str, Sequence[float]] | None,
    settings: Mapping[str, Any],
    reasons: Sequence[str],
    region_figures: Sequence[str] = (),
) -> Path:
    """Write ``report.html`` for one evaluation into ``out_dir``.

    The file is written to a temporary name and then renamed, so a crash
    never leaves a half-written report. An existing report is replaced.

    Args:
        out_dir: Folder of the report, created when missing.
        title: Page heading, such as the project and model name.
        evaluation: Metrics from ``evaluate_predictions``.
        scores: ``(N,)`` defect scores of the evaluated images.
        true_is_defect: ``(N,)`` bool, True for images whose true label is a
            defect class.
        items: Images to show as thumbnails, in display order. Usually the
            first few of ``evaluation.error_indices``. Every item given is shown.
        loss_history: Optional curve name, such as ``train`` or ``dev``, to
            its loss per epoch. None or empty leaves the section out.
        settings: Settings the training chose, shown as a table. Values that
            are not str, int, float, bool or None are shown as JSON.
        reasons: Plain-language reasons for those settings, one a line.
        region_figures: Pixel or box figures of a segmentation or detection
            model, one a line (``defectlab.evaluation.regions.region_lines``).

    Returns:
        Path of the written report.

    Raises:
        InvalidInputError: When ``scores`` and ``true_is_defect`` do not
            match the evaluation, or an item's pixels or heatmap are invalid.
    """
    score_array, is_defect = _check_scores(scores, true_is_defect, evaluation)
    heatmap_limits = _heatmap_limits(items)

    context = {
        "title": title,
        "headline": _headline(evaluation),
        "summary": _summary(evaluation),
        "charts": _charts(evaluation, score_array, is_defect, loss_history),
        "class_rows": _class_rows(evaluation),
        "show_class_auroc": any(row.auroc is not None for row in evaluation.per_class),
        "settings": [(str(key), _format_setting(value)) for key, value in settings.items()],
        "reasons": list(reasons),
        "errors": [_error_card(item, evaluation.ok_class, heatmap_limits) for item in items],
        "heatmap_scale": _describe_heatmap_limits(heatmap_limits),
        "region_figures": list(region_figures),
    }
    html = _render(context)

    path = Path(out_dir) / REPORT_FILE_NAME
    _write_atomically(path, html)
    logger.info("Wrote evaluation report with %d thumbnails to %s", len(items), path)
    return path


def _check_scores(
    scores: np.ndarray, true_is_defect: np.ndarray, evaluation: Evaluation
) -> tuple[np.ndarray, np.ndarray]:
    score_array = np.asarray(scores, dtype=np.float64)
    is_defect = np.asarray(true_is_defect, dtype=bool)
    expected = (evaluation.images,)
    if score_array.shape != expected or is_defect.shape != expected:
        raise InvalidInputError(
            f"scores and true_is_defect must both have shape {expected}, one entry per evaluated "
            f"image, got {score_array.shape} and {is_defect.shape}."
        )
    if int(is_defect.sum()) != evaluation.defective:
        raise InvalidInputError(
            f"true_is_defect marks {int(is_defect.sum())} defective images but the evaluation "
            f"counted {evaluation.defective}; pass the arrays the evaluation was computed from."
        )
    if not np.isfinite(score_array).all():
        raise InvalidInputError("scores contains NaN or infinite values; pass the scores the evaluation used.")
    return score_array, is_defect


def _headline(evaluation: Evaluation) -> list[dict[str, str]]:
    cards = [
        _rate_card(
            "Escape rate",
            evaluation.escape_rate,
            f"{evaluation.escapes} of {evaluation.defective} defective images were passed as OK.",
            evaluation.undefined.get("escape_rate"),
        ),
        _rate_card(
            "Overkill rate",
            evaluation.overkill_rate,
            f"{evaluation.overkills} of {evaluation.good} good images were rejected as defective.",
            evaluation.undefined.get("overkill_rate"),
        ),
    ]
    if len(evaluation.class_names) > 2 and evaluation.defective:
        cards.append(_wrong_class_card(evaluation))
    cards.append(
        {
            "label": "Threshold",
            "value": f"{evaluation.threshold:.4g}",
            "detail": "Images with a defect score above it are called defective.",
            "tone": "neutral",
        }
    )
    return cards


def _wrong_class_card(evaluation: Evaluation) -> dict[str, str]:
    return {
        "label": "Wrong defect class",
        "value": _percent(evaluation.wrong_class / evaluation.defective),
        "detail": f"{evaluation.wrong_class} of {evaluation.defective} defective images were "
        "rejected, but under another defect class.",
        "tone": "bad" if evaluation.wrong_class else "good",
    }


def _rate_card(label: str, rate: float | None, detail: str, undefined_reason: str | None) -> dict[str, str]:
    if rate is None:
        return {"label": label, "value": _MISSING, "detail": undefined_reason or "", "tone": "neutral"}
    return {"label": label, "value": _percent(rate), "detail": detail, "tone": "bad" if rate > 0 else "good"}


def _summary(evaluation: Evaluation) -> list[tuple[str, str]]:
    return [
        ("Images", str(evaluation.images)),
        ("Defective", str(evaluation.defective)),
        ("Good", str(evaluation.good)),
        ("Accuracy over all classes", _percent(evaluation.accuracy)),
        ("AUROC, defective vs good", _number(evaluation.auroc, evaluation.undefined.get("auroc"))),
        (
            "Average precision, defective vs good",
            _number(evaluation.average_precision, evaluation.undefined.get("average_precision")),
        ),
    ]


def _charts(
    evaluation: Evaluation,
    scores: np.ndarray,
    true_is_defect: np.ndarray,
    loss_history: Mapping[str, Sequence[float]] | None,
) -> dict[str, str | None]:
    ranking = None
    if evaluation.auroc is not None:
        ranking = _data_uri(plot_ranking_curves(curves(true_is_defect, scores), evaluation))

    losses = None
    if loss_history and any(len(values) for values in loss_history.values()):
        losses = _data_uri(plot_loss_curves({name: list(values) for name, values in loss_history.items()}))

    return {
        "confusion_matrix": _data_uri(plot_confusion_matrix(evaluation.confusion_matrix, evaluation.class_names)),
        "histogram": _data_uri(plot_score_histogram(scores, true_is_defect, evaluation.threshold)),
        "ranking": ranking,
        "ranking_missing": evaluation.undefined.get("auroc"),
        "losses": losses,
    }


def _class_rows(evaluation: Evaluation) -> list[dict[str, str]]:
    return [
        {
            "name": row.name,
            "support": str(row.support),
            "predicted": str(row.predicted),
            "recall": _percent(row.recall),
            "precision": _percent(row.precision),
            "f1": _number(row.f1),
            "auroc": _number(row.auroc),
        }
        for row in evaluation.per_class
    ]


def _error_card(
    item: ReportItem, ok_class: str, heatmap_limits: tuple[float, float] | None
) -> dict[str, str | None]:
    try:
        view = to_thumbnail(to_display(item.pixels), max_side=THUMBNAIL_SIDE)
        overlay = None
        if item.heatmap is not None:
            _check_heatmap_size(item.heatmap, item.pixels)
            low, high = heatmap_limits if heatmap_limits is not None else (0.0, 1.0)
            overlay = _data_uri(_png(overlay_heatmap(view, item.heatmap, low=low, high=high)))
        if item.labeled_boxes or item.predicted_boxes:
            outlined = outline_boxes(view, item.pixels.shape[:2], item.labeled_boxes, item.predicted_boxes)
            overlay = _data_uri(_png(outlined))
    except InvalidInputError as error:
        raise InvalidInputError(f"Report item {item.path!r}: {error}") from error

    return {
        "path": item.path,
        "kind": _error_kind(item.true_label, item.pred_label, ok_class),
        "true_label": item.true_label,
        "pred_label": item.pred_label,
        "score": f"{item.score:.4g}",
        "image": _data_uri(_png(view)),
        "overlay": overlay,
    }


def _check_heatmap_size(heatmap: np.ndarray, pixels: np.ndarray) -> None:
    if heatmap.shape != pixels.shape[:2]:
        raise InvalidInputError(
            f"heatmap has shape {heatmap.shape} but the image is {pixels.shape[:2]}; "
            "a heatmap must have the size of the original image."
        )


def _error_kind(true_label: str, pred_label: str, ok_class: str) -> str:
    if true_label == pred_label:
        return "correct"
    if pred_label == ok_class:
        return "escape"
    if true_label == ok_class:
        return "overkill"
    return "wrong class"


def _heatmap_limits(items: Sequence[ReportItem]) -> tuple[float, float] | None:
    """Return one colour scale for all heatmaps, so equal colours mean equal scores."""
    heatmaps = [item.heatmap for item in items if item.heatmap is not None]
    finite = [heatmap[np.isfinite(heatmap)] for heatmap in heatmaps]
    values = [part for part in finite if part.size]
    if not values:
        return None

    low = min(float(part.min()) for part in values)
    high = max(float(part.max()) for part in values)
    return (low, high) if high > low else (low, low + 1.0)


def _describe_heatmap_limits(limits: tuple[float, float] | None) -> str | None:
    if limits is None:
        return None
    return f"{limits[0]:.4g} (no colour) to {limits[1]:.4g} (full colour)"


def _render(context: dict[str, Any]) -> str:
    source = files("defectlab.evaluation").joinpath("templates", "report.html").read_text(encoding="utf-8")
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return environment.from_string(source).render(**context)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name opened with "x" gets the usual umask permissions, which
    # tempfile.mkstemp would narrow to owner-only.
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("x", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _percent(value: float | None) -> str:
    return _MISSING if value is None else f"{100.0 * value:.1f} %"


def _number(value: float | None, undefined_reason: str | None = None) -> str:
    if value is None:
        return f"{_MISSING} ({undefined_reason})" if undefined_reason else _MISSING
    return f"{value:.3f}"


def _format_setting(value: Any) -> str:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)
