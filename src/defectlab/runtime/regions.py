"""Regions from a per-pixel result, and the defect book's decision rule that decides which ones count.

A region is a connected group of pixels (8-neighbourhood) whose defect
probability is above the model's threshold and whose likeliest defect class
is the same. Its ``score`` is the highest defect probability inside it, its
``area`` the pixel count and its ``box`` ``[x_min, y_min, x_max, y_max]`` in
pixels (the maximum is exclusive, as for labeled boxes).

A segmentation model may also carry an outline level per class, chosen on
the dev masks, because the level that decides an image best is seldom the
level that traces a defect's edge best. The threshold then still decides
which defects exist, and the outline level decides which pixels each one
covers (``draw_regions``).

A decision rule (see ``defectlab.book``) has ``min_length`` (the longer side
of the region's box) and ``min_area``, in pixels or in millimetres with
``pixel_size_mm``. A region smaller than either limit does not make the item
defective; it is still reported, with ``counts: false``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = ["decide_from_boxes", "decide_from_pixels", "describe_regions", "draw_regions", "find_regions",
           "image_score", "passes_rule"]

_EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


def draw_regions(classes: np.ndarray, defect: np.ndarray, *, threshold: float,
                 outlines: Sequence[float] | None = None) -> np.ndarray:
    """Return the class index of every region pixel, 0 elsewhere, uint8 ``(H, W)``.

    Without ``outlines`` a pixel belongs to a region when its defect
    probability is above ``threshold``. With them, a connected group of pixels
    of one class above ``min(threshold, outline)`` is a defect when its peak is
    above ``threshold``, and the defect covers its pixels at or above the
    class's outline level. A defect whose peak stays below that level keeps
    the whole group, so no defect found by the threshold is lost.

    Args:
        classes: The likeliest defect class per pixel (1 or more).
        defect: Defect probability per pixel.
        threshold: The model's image threshold.
        outlines: Outline level per class index (index 0 unused), or None.
    """
    if outlines is None:
        return np.where(defect > threshold, classes, 0).astype(np.uint8)
    # Both sides of each comparison are float32, as in the counts that chose the levels. The work goes
    # class by class, so a very large image needs only a few full-size masks besides the group labels.
    levels = np.asarray(outlines, dtype=np.float32)
    drawn = np.zeros(classes.shape, dtype=np.uint8)
    for index in range(1, len(levels)):
        candidate = classes == index
        candidate &= defect > min(levels[index], np.float32(threshold))
        groups, count = ndimage.label(candidate, structure=_EIGHT_NEIGHBOURS)
        del candidate
        if count == 0:
            continue
        numbers = np.arange(1, count + 1)
        is_defect = np.concatenate([[False], ndimage.maximum(defect, groups, numbers) > threshold])
        outlined = defect >= levels[index]
        has_outline = np.concatenate([[False], ndimage.maximum(outlined, groups, numbers) > 0])
        covered = is_defect[groups] & (outlined | ~has_outline[groups])
        drawn[covered] = index
    return drawn


def find_regions(classes: np.ndarray, defect: np.ndarray, class_names: list[str], *, threshold: float,
                 rules: Mapping[str, Mapping[str, Any]] | None = None,
                 outlines: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Return the regions of every defect class, highest score first.

    Args:
        classes: The likeliest defect class per pixel (index into ``class_names``, 1 or more).
        defect: Defect probability per pixel.
        threshold: Pixels whose defect probability is not above this belong to no region.
        rules: Decision rule per class name; classes without one count at any size.
        outlines: Outline level per class index, as ``draw_regions`` takes them.
    """
    drawn = draw_regions(classes, defect, threshold=threshold, outlines=outlines)
    return describe_regions(drawn, defect, class_names, rules=rules)


def describe_regions(drawn: np.ndarray, defect: np.ndarray, class_names: list[str], *,
                     rules: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Return the regions of a drawn mask (``draw_regions``), highest score first, each checked against its rule."""
    found = []
    for index in range(1, len(class_names)):
        labeled, count = ndimage.label(drawn == index, structure=_EIGHT_NEIGHBOURS)
        if count == 0:
            continue
        rule = (rules or {}).get(class_names[index], {})
        for number, where in enumerate(ndimage.find_objects(labeled), start=1):
            inside = labeled[where] == number
            area = int(inside.sum())
            peak = float(defect[where][inside].max())
            box = [int(where[1].start), int(where[0].start), int(where[1].stop), int(where[0].stop)]
            found.append({"class": class_names[index], "area": area, "box": box,
                          "score": round(peak, 6), "counts": passes_rule(box, area, rule)})
    return sorted(found, key=lambda region: (-region["score"], region["box"]))


def passes_rule(box: list[float], area: float, rule: Mapping[str, Any]) -> bool:
    """Return whether a region of this box and pixel area reaches the rule's minimum length and area."""
    scale = float(rule.get("pixel_size_mm") or 1.0) if rule.get("unit") == "mm" else 1.0
    length = max(box[2] - box[0], box[3] - box[1]) * scale
    return length >= float(rule.get("min_length", 0.0)) and area * scale * scale >= float(rule.get("min_area", 0.0))


def decide_from_pixels(classes: np.ndarray, defect: np.ndarray, class_names: list[str], *, threshold: float,
                       rules: Mapping[str, Mapping[str, Any]] | None = None,
                       outlines: Sequence[float] | None = None) -> tuple[float, list[dict[str, Any]]]:
    """Return an image's defect score and its regions, from per-pixel classes and defect probabilities.

    The score is the best counting region's score when there is one, so the
    image is defective exactly when a region passes its class's rule.
    Otherwise it is the highest defect probability at or below the
    threshold, which keeps clean images ranked for curves and AP.
    """
    regions = find_regions(classes, defect, class_names, threshold=threshold, rules=rules, outlines=outlines)
    return image_score(regions, defect, threshold=threshold), regions


def image_score(regions: list[dict[str, Any]], defect: np.ndarray, *, threshold: float) -> float:
    """Return the best counting region's score, else the highest defect probability at or below the threshold."""
    counting = [region["score"] for region in regions if region["counts"]]
    if counting:
        return max(counting)
    return float(np.max(defect, where=defect <= threshold, initial=0.0))


def decide_from_boxes(boxes: list[dict[str, Any]], *, threshold: float,
                      rules: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[float, list[dict[str, Any]]]:
    """Return an image's defect score and its boxes above the threshold, each marked whether it counts.

    The score follows ``decide_from_pixels``: the best counting box's score,
    else the best score at or below the threshold.
    """
    kept = []
    for box in boxes:
        if box["score"] > threshold:
            x0, y0, x1, y1 = box["box"]
            counts = passes_rule(box["box"], (x1 - x0) * (y1 - y0), (rules or {}).get(box["class"], {}))
            kept.append({**box, "counts": counts})
    counting = [box["score"] for box in kept if box["counts"]]
    if counting:
        return max(counting), kept
    below = [box["score"] for box in boxes if box["score"] <= threshold]
    return (max(below) if below else 0.0), kept
