"""Conversions between regions and pixels: rasterize boxes and polygons, trace masks.

Coordinates are continuous pixel coordinates: pixel ``(row, column)``
covers ``column..column + 1`` in x and ``row..row + 1`` in y, so its centre
is at ``(column + 0.5, row + 0.5)``. A pixel belongs to a shape when its
centre lies inside it. Under this rule a traced mask rasterizes back to
exactly the same pixels.
"""

from __future__ import annotations

import numpy as np

from defectlab.formats.masks_values import resize_mask
from defectlab.formats.records import Region

__all__ = ["fill_box", "fill_polygon", "mask_polygons", "region_mask"]


def region_mask(region: Region, width: int, height: int) -> np.ndarray:
    """Rasterize a pixel region into a boolean ``(height, width)`` mask.

    A mask of another size is resized with nearest-neighbour sampling.
    """
    if region.kind == "mask" and region.mask is not None:
        mask = region.mask.astype(bool)
        return mask if mask.shape == (height, width) else resize_mask(mask, width, height)
    if region.kind == "polygon" and region.polygon:
        return fill_polygon(region.polygon, width, height)
    if region.kind == "box" and region.box is not None:
        return fill_box(region.box, width, height)
    return np.zeros((height, width), dtype=bool)


def fill_box(box: tuple[float, float, float, float], width: int, height: int) -> np.ndarray:
    """Return the pixels whose centres lie inside ``(x_min, y_min, x_max, y_max)``."""
    mask = np.zeros((height, width), dtype=bool)
    x_min, y_min, x_max, y_max = box
    columns = slice(_first_centre_at_or_after(x_min, width), _first_centre_at_or_after(x_max, width))
    rows = slice(_first_centre_at_or_after(y_min, height), _first_centre_at_or_after(y_max, height))
    mask[rows, columns] = True
    return mask


def fill_polygon(values: list[float], width: int, height: int) -> np.ndarray:
    """Return the pixels whose centres lie inside a flat polygon ``[x1, y1, ...]`` (even-odd rule)."""
    mask = np.zeros((height, width), dtype=bool)
    xs = np.asarray(values[0::2], dtype=np.float64)
    ys = np.asarray(values[1::2], dtype=np.float64)
    next_xs, next_ys = np.roll(xs, -1), np.roll(ys, -1)

    first_row = _first_centre_at_or_after(float(ys.min()), height)
    last_row = _first_centre_at_or_after(float(ys.max()), height)
    for row in range(first_row, last_row):
        centre_y = row + 0.5
        # Half-open test, so a vertex on the scan line is counted once.
        crossing = (ys <= centre_y) != (next_ys <= centre_y)
        if not crossing.any():
            continue
        t = (centre_y - ys[crossing]) / (next_ys[crossing] - ys[crossing])
        hits = np.sort(xs[crossing] + t * (next_xs[crossing] - xs[crossing]))
        for start, stop in zip(hits[0::2], hits[1::2], strict=False):
            mask[row, _first_centre_at_or_after(start, width) : _first_centre_at_or_after(stop, width)] = True
    return mask


def mask_polygons(mask: np.ndarray) -> list[list[float]]:
    """Trace each eight-connected part of a mask as a flat polygon along its pixel edges.

    Holes are filled, and parts that touch only at a corner may merge into
    one outline. One-pixel-wide lines keep their width, because the outline
    follows pixel edges, not pixel centres.
    """
    try:
        import cv2
    except ImportError as error:
        raise ImportError(
            "tracing mask outlines needs OpenCV; install it with: pip install opencv-python-headless"
        ) from error

    # At twice the size every pixel is a 2x2 block. A traced boundary pixel
    # then lies in the left or right half of a source pixel, and that half
    # gives the edge of the source pixel that the outline follows.
    padded = np.pad(mask.astype(np.uint8), 1)
    doubled = np.repeat(np.repeat(padded, 2, axis=0), 2, axis=1)
    contours, _ = cv2.findContours(doubled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)

    polygons = []
    for contour in contours:
        points = contour.reshape(-1, 2).astype(np.int64)
        corners = (points + 1) // 2 - 1
        deduplicated = [corners[0]]
        for point in corners[1:]:
            if not np.array_equal(point, deduplicated[-1]):
                deduplicated.append(point)
        if len(deduplicated) >= 3:
            polygons.append(np.asarray(deduplicated, dtype=np.float64).reshape(-1).tolist())
    return polygons


def _first_centre_at_or_after(edge: float, size: int) -> int:
    """Return the first pixel index whose centre is at or after ``edge``, within ``0..size``."""
    return int(min(max(np.ceil(edge - 0.5), 0), size))
