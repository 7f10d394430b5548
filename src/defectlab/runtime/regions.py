"""Regions from a per-pixel result, and the defect book's decision rule that decides which ones count.

A region is a connected group of pixels (8-neighbourhood) given the same
defect class. Its ``score`` is the highest defect probability inside it, its
``area`` the pixel count and its ``box`` ``[x_min, y_min, x_max, y_max]`` in
pixels (the maximum is exclusive, as for labeled boxes).

A decision rule (see ``defectlab.book``) has ``min_length`` (the longer side
of the region's box) and ``min_area``, in pixels or in millimetres with
``pixel_size_mm``. A region smaller than either limit does not make the item
defective; it is still reported, with ``counts: false``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = ["find_regions", "passes_rule"]

_EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


def find_regions(classes: np.ndarray, defect: np.ndarray, class_names: list[str], *,
                 rules: Mapping[str, Mapping[str, Any]] | None = None, min_score: float = 0.0) -> list[dict[str, Any]]:
    """Return the regions of every defect class, highest score first.

    Args:
        classes: Class index per pixel, 0 being ``ok``.
        defect: Defect probability per pixel.
        rules: Decision rule per class name; classes without one count at any size.
        min_score: Regions whose score is not above this are left out.
    """
    found = []
    for index in range(1, len(class_names)):
        labeled, count = ndimage.label(classes == index, structure=_EIGHT_NEIGHBOURS)
        if count == 0:
            continue
        slices = ndimage.find_objects(labeled)
        peaks = ndimage.maximum(defect.astype(np.float32), labels=labeled, index=np.arange(1, count + 1))
        areas = ndimage.sum_labels(np.ones_like(labeled, dtype=np.int64), labels=labeled,
                                   index=np.arange(1, count + 1))
        rule = (rules or {}).get(class_names[index], {})
        for where, peak, area in zip(slices, np.atleast_1d(peaks), np.atleast_1d(areas)):
            if float(peak) <= min_score:
                continue
            box = [int(where[1].start), int(where[0].start), int(where[1].stop), int(where[0].stop)]
            found.append({"class": class_names[index], "area": int(area), "box": box,
                          "score": round(float(peak), 6), "counts": passes_rule(box, int(area), rule)})
    return sorted(found, key=lambda region: (-region["score"], region["box"]))


def passes_rule(box: list[float], area: float, rule: Mapping[str, Any]) -> bool:
    """Return whether a region of this box and pixel area reaches the rule's minimum length and area."""
    scale = float(rule.get("pixel_size_mm") or 1.0) if rule.get("unit") == "mm" else 1.0
    length = max(box[2] - box[0], box[3] - box[1]) * scale
    return length >= float(rule.get("min_length", 0.0)) and area * scale * scale >= float(rule.get("min_area", 0.0))
