"""Checks on boxes, polygons and masks that every reader applies the same way.

Each check takes the shape as read and a ``Reporter`` for its file and line.
It returns the shape to import, corrected where a documented correction
applies (with a warning), or ``None`` when the shape is rejected (with an
error). One bad shape never stops the rest of the file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from defectlab.formats._problems import Reporter

__all__ = [
    "NORMALIZED_TOLERANCE",
    "check_mask",
    "check_normalized_box",
    "check_normalized_polygon",
    "check_pixel_box",
    "check_pixel_polygon",
    "format_number",
]

NORMALIZED_TOLERANCE = 0.05
"""How far outside 0..1 a normalized value may lie and still be clipped instead of rejected."""

Box = tuple[float, float, float, float]

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def format_number(value: float) -> str:
    """Write a coordinate compactly: ``12`` for 12.0, ``0.30405`` for 0.30405."""
    return f"{value:.6g}"


def check_normalized_box(values: Sequence[float], reporter: Reporter) -> Box | None:
    """Check a YOLO box ``(x_center, y_center, width, height)`` in fractions of the image.

    Returns:
        ``(x_min, y_min, x_max, y_max)`` as fractions, clipped to 0..1, or
        ``None`` when the values are out of range or the box is empty.
    """
    if not _normalized_in_range(values, reporter, what="box"):
        return None

    x_center, y_center, width, height = values
    box = (x_center - width / 2, y_center - height / 2, x_center + width / 2, y_center + height / 2)
    return _clip_box(box, (1.0, 1.0), reporter, unit="the image (0..1)")


def check_pixel_box(box: Box, reporter: Reporter, *, size: tuple[int, int] | None) -> Box | None:
    """Check a pixel box ``(x_min, y_min, x_max, y_max)``; clip it to ``size`` (width, height) when known."""
    if not all(np.isfinite(box)):
        reporter.error(f"box {_format_values(box)} contains a value that is not a finite number; box skipped")
        return None
    if box[2] < box[0] or box[3] < box[1]:
        reporter.error(
            f"box {_format_values(box)} has x_max < x_min or y_max < y_min; "
            "write it as x_min, y_min, x_max, y_max; box skipped"
        )
        return None

    limits = (float("inf"), float("inf")) if size is None else (float(size[0]), float(size[1]))
    return _clip_box(box, limits, reporter, unit="the image" if size is None else f"the declared {size[0]}x{size[1]}")


def check_normalized_polygon(values: Sequence[float], reporter: Reporter) -> list[float] | None:
    """Check a flat ``[x1, y1, x2, y2, ...]`` polygon in fractions of the image; clip small overshoots."""
    if not _polygon_shape_ok(values, reporter) or not _normalized_in_range(values, reporter, what="polygon"):
        return None

    clipped = [min(max(value, 0.0), 1.0) for value in values]
    if clipped != list(values):
        reporter.warning(f"polygon points outside the image (by up to {_overshoot(values, 1.0)}) were clipped to 0..1")
    return clipped if _polygon_area_ok(clipped, reporter) else None


def check_pixel_polygon(
    values: Sequence[float], reporter: Reporter, *, size: tuple[int, int] | None
) -> list[float] | None:
    """Check a flat pixel polygon; clip points outside ``size`` (width, height) when known."""
    if not _polygon_shape_ok(values, reporter):
        return None
    if not all(np.isfinite(values)):
        reporter.error("polygon contains a value that is not a finite number; polygon skipped")
        return None

    width, height = (float("inf"), float("inf")) if size is None else (float(size[0]), float(size[1]))
    clipped = [min(max(value, 0.0), width if index % 2 == 0 else height) for index, value in enumerate(values)]
    if clipped != list(values):
        reporter.warning("polygon points outside the image were clipped to its edges")
    return clipped if _polygon_area_ok(clipped, reporter) else None


def check_mask(mask: np.ndarray, reporter: Reporter) -> np.ndarray | None:
    """Check a boolean mask: reject an empty one, warn about one-pixel islands and keep them.

    A one-pixel island (eight-connected) is usually a stray brush stroke or
    noise from a lossy file, but it may be a real pinhole, so it is flagged
    and kept.
    """
    if not mask.any():
        reporter.error("mask has no defect pixels; region skipped")
        return None

    from scipy import ndimage  # imported here because SciPy is slow to load

    labels, island_count = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    sizes = np.bincount(labels.ravel())[1:]
    single = np.flatnonzero(sizes == 1)
    if single.size:
        ys, xs = np.nonzero(np.isin(labels, single + 1))
        where = ", ".join(f"({x}, {y})" for x, y in zip(xs[:5].tolist(), ys[:5].tolist(), strict=True))
        more = f" and {single.size - 5} more" if single.size > 5 else ""
        reporter.warning(
            f"mask has {single.size} one-pixel island(s) out of {island_count} at (x, y) {where}{more}; "
            "kept as drawn, erase them if they are noise"
        )
    return mask


def _normalized_in_range(values: Sequence[float], reporter: Reporter, *, what: str) -> bool:
    if not all(np.isfinite(values)):
        reporter.error(f"{what} contains a value that is not a finite number; {what} skipped")
        return False
    low, high = -NORMALIZED_TOLERANCE, 1.0 + NORMALIZED_TOLERANCE
    if all(low <= value <= high for value in values):
        return True

    message = f"{what} values {_format_values(values)} are outside 0..1; {what} skipped"
    if min(values) >= 0 and max(values) > 2:
        message += (
            ". They look like pixel coordinates: YOLO expects fractions of the image, so divide x and width "
            "by the image width, and y and height by the image height"
        )
    reporter.error(message)
    return False


def _clip_box(box: Box, limits: tuple[float, float], reporter: Reporter, *, unit: str) -> Box | None:
    x_min, y_min, x_max, y_max = box
    width, height = limits
    clipped = (max(x_min, 0.0), max(y_min, 0.0), min(x_max, width), min(y_max, height))
    if clipped != tuple(box):
        reporter.warning(f"box {_format_values(box)} reaches outside {unit}; clipped to {_format_values(clipped)}")
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        reporter.error(
            f"box {_format_values(clipped)} has zero width or height inside the image; box skipped"
        )
        return None
    return clipped


def _polygon_shape_ok(values: Sequence[float], reporter: Reporter) -> bool:
    if len(values) % 2:
        reporter.error(
            f"polygon has an odd number of values ({len(values)}); expected x, y pairs; polygon skipped"
        )
        return False
    if len(values) < 6:
        reporter.error(f"polygon has {len(values) // 2} point(s); at least 3 are needed; polygon skipped")
        return False
    return True


def _polygon_area_ok(values: Sequence[float], reporter: Reporter) -> bool:
    xs = np.asarray(values[0::2], dtype=np.float64)
    ys = np.asarray(values[1::2], dtype=np.float64)
    area = 0.5 * abs(float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))))
    if area > 0:
        return True
    if np.ptp(xs) == 0 and np.ptp(ys) == 0:
        reporter.error(f"polygon points all lie at ({format_number(xs[0])}, {format_number(ys[0])}); polygon skipped")
    else:
        reporter.error("polygon has zero area (its points lie on one line); polygon skipped")
    return False


def _overshoot(values: Sequence[float], high: float) -> str:
    worst = max(max(0.0, -value, value - high) for value in values)
    return format_number(worst)


def _format_values(values: Sequence[float]) -> str:
    return "(" + ", ".join(format_number(value) for value in values) + ")"
