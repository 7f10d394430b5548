"""Measure predicted boxes against labeled boxes, in plain NumPy.

Boxes are ``[x_min, y_min, x_max, y_max]`` in the image's own pixels.
Matching follows COCO's rule, as ``pycocotools`` evaluates it. Within one
image and class, predictions are taken from the highest score down. Each
one matches the labeled box (the truth) with which its IoU is highest among
the truths not matched yet, if that IoU is at least the threshold. A truth is
matched at most once, so a second box on the same defect is a false positive.

Average precision (AP) is COCO's 101-point interpolated AP: the precision
envelope (the best precision at this recall or higher) averaged at the recalls
0, 0.01, ..., 1, where a recall the predictions never reach counts as
precision 0. ``ap50`` uses IoU 0.5; ``ap50_95`` is the mean over the IoU
thresholds 0.5, 0.55, ..., 0.95. A class with no truth has AP ``None``, and
means are taken over the classes that have a value.

Recall by defect size uses COCO's area bounds on the truth's box area in
image pixels: small below 32 x 32 = 1024, medium from 1024 up to 96 x 96 =
9216, large from 9216 up.

The image-level view is that of an inspector: an image is called defective
when any of its boxes scores above the threshold, and it is defective when it
has at least one truth. An escape is a defective image called good; an
overkill is a good image called defective.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from defectlab.errors import InvalidInputError

__all__ = [
    "IOU_THRESHOLDS",
    "SIZE_BOUNDS",
    "BoxEvaluation",
    "ImageLevel",
    "average_precision",
    "box_iou",
    "evaluate_boxes",
    "image_level",
    "match_boxes",
    "recall_by_size",
]

IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * step, 2) for step in range(10))
"""IoU thresholds of ``ap50_95``: 0.5, 0.55, ..., 0.95."""

SIZE_BOUNDS = {"small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, float("inf"))}
"""Truth box area ``[low, high)`` in image pixels per size, as COCO bounds them."""

_RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class ImageLevel:
    """Images called defective or good at one threshold.

    Attributes:
        threshold: Box score above which an image is called defective.
        defective_images: Images with at least one truth.
        good_images: Images without truth.
        escapes: Defective images with no box above the threshold.
        overkills: Good images with a box above the threshold.
        escape_rate: ``escapes / defective_images``; None without defective images.
        overkill_rate: ``overkills / good_images``; None without good images.
    """

    threshold: float
    defective_images: int
    good_images: int
    escapes: int
    overkills: int
    escape_rate: float | None
    overkill_rate: float | None


@dataclass(frozen=True)
class BoxEvaluation:
    """Box metrics of one model on one set of images.

    Attributes:
        ap50: Mean over classes of the AP at IoU 0.5, or None when no class has a truth.
        ap50_95: Mean over classes of the AP averaged over ``IOU_THRESHOLDS``.
        per_class: Per class name: ``ap50``, ``ap50_95``, ``truths`` and ``predictions``.
        recall_by_size: Per size in ``SIZE_BOUNDS``: ``truths`` and ``recall`` (None
            without truth), counting a truth as found when a box of its class
            scoring above ``image_level.threshold`` overlaps it with IoU 0.5 or more.
        image_level: Escapes and overkills at the threshold.
    """

    ap50: float | None
    ap50_95: float | None
    per_class: dict[str, dict[str, Any]]
    recall_by_size: dict[str, dict[str, Any]]
    image_level: ImageLevel

    def to_dict(self) -> dict[str, Any]:
        """Return the metrics as plain values, ready for JSON."""
        return asdict(self)


def box_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Return the IoU of every box in ``first`` ``(N, 4)`` with every box in ``second`` ``(M, 4)``, ``(N, M)``.

    A pair whose union has no area has IoU 0.
    """
    first = np.asarray(first, dtype=np.float64).reshape(-1, 4)
    second = np.asarray(second, dtype=np.float64).reshape(-1, 4)
    width = np.minimum(first[:, None, 2], second[None, :, 2]) - np.maximum(first[:, None, 0], second[None, :, 0])
    height = np.minimum(first[:, None, 3], second[None, :, 3]) - np.maximum(first[:, None, 1], second[None, :, 1])
    overlap = np.clip(width, 0.0, None) * np.clip(height, 0.0, None)
    union = _areas(first)[:, None] + _areas(second)[None, :] - overlap
    return np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)


def _areas(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0.0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0.0, None)


def match_boxes(predicted: np.ndarray, scores: np.ndarray, truths: np.ndarray, *,
                iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Match one image's predictions of one class to its truths, highest score first.

    Args:
        predicted: ``(N, 4)`` predicted boxes.
        scores: ``(N,)`` their scores.
        truths: ``(M, 4)`` labeled boxes.
        iou_threshold: Lowest IoU of a match.

    Returns:
        ``(matched_truth, found)``. ``matched_truth`` is int64 ``(N,)``: per
        prediction, the index of the truth it matched, or -1 for a false
        positive. ``found`` is bool ``(M,)``: per truth, whether a prediction
        matched it.
    """
    ious = box_iou(predicted, truths)
    matched_truth = np.full(len(ious), -1, dtype=np.int64)
    found = np.zeros(ious.shape[1], dtype=bool)
    for index in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
        candidates = np.where(found, -1.0, ious[index])
        if candidates.size == 0:
            continue
        best = int(np.argmax(candidates))
        if candidates[best] >= iou_threshold:
            matched_truth[index] = best
            found[best] = True
    return matched_truth, found


def average_precision(scores: np.ndarray, is_true_positive: np.ndarray, truth_count: int) -> float | None:
    """Return COCO's 101-point interpolated AP of ranked predictions, or None when ``truth_count`` is 0.

    Args:
        scores: ``(N,)`` prediction scores, over all images.
        is_true_positive: ``(N,)`` whether each prediction matched a truth.
        truth_count: Truths of this class over all images.
    """
    if truth_count == 0:
        return None
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    hits = np.asarray(is_true_positive, dtype=bool)[order]
    true_positives = np.cumsum(hits)
    recall = true_positives / truth_count
    precision = true_positives / np.arange(1, len(hits) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    # Each recall point takes the envelope at the first rank that reaches it. A point never reached scores 0.
    positions = np.searchsorted(recall, _RECALL_POINTS, side="left")
    reached = positions < len(envelope)
    sampled = np.where(reached, envelope[np.minimum(positions, len(envelope) - 1)], 0.0)
    return float(np.mean(sampled))


def evaluate_boxes(predictions: Sequence[Sequence[Mapping[str, Any]]], truths: Sequence[Sequence[Mapping[str, Any]]],
                   class_names: Sequence[str], *, threshold: float) -> BoxEvaluation:
    """Measure predicted boxes against truths over a set of images.

    Args:
        predictions: Per image, boxes ``{"class", "box", "score"}`` as
            ``Detector.predict`` returns them.
        truths: Per image, boxes ``{"class", "box"}``. An empty list is a good image.
        class_names: Box classes to measure (``ok`` is skipped when present).
        threshold: Box score above which a box counts for ``recall_by_size``
            and ``image_level``.

    Raises:
        InvalidInputError: The two lists differ in length, or a box names a class
            outside ``class_names``.
    """
    names = [name for name in class_names if name != "ok"]
    _check_inputs(predictions, truths, names)

    per_class = {name: _class_metrics(predictions, truths, name) for name in names}
    ap50 = _mean([metrics["ap50"] for metrics in per_class.values()])
    ap50_95 = _mean([metrics["ap50_95"] for metrics in per_class.values()])
    return BoxEvaluation(ap50=ap50, ap50_95=ap50_95, per_class=per_class,
                         recall_by_size=recall_by_size(predictions, truths, threshold=threshold),
                         image_level=image_level(predictions, truths, threshold=threshold))


def _check_inputs(predictions: Sequence[Sequence[Mapping[str, Any]]], truths: Sequence[Sequence[Mapping[str, Any]]],
                  names: Sequence[str]) -> None:
    if len(predictions) != len(truths):
        raise InvalidInputError(f"{len(predictions)} prediction lists but {len(truths)} truth lists were given; "
                                "pass one list of each per image")
    unknown = sorted({box["class"] for boxes in (*predictions, *truths) for box in boxes} - set(names))
    if unknown:
        raise InvalidInputError(f"boxes name classes {unknown} that are not among the box classes {list(names)}")


def _class_metrics(predictions: Sequence[Sequence[Mapping[str, Any]]], truths: Sequence[Sequence[Mapping[str, Any]]],
                   name: str) -> dict[str, Any]:
    """Return ``ap50``, ``ap50_95``, ``truths`` and ``predictions`` of one class."""
    per_threshold = []
    for iou_threshold in IOU_THRESHOLDS:
        scores, hits, truth_count = _ranked_matches(predictions, truths, name, iou_threshold)
        per_threshold.append(average_precision(scores, hits, truth_count))
    _, hits, truth_count = _ranked_matches(predictions, truths, name, IOU_THRESHOLDS[0])
    return {"ap50": per_threshold[0], "ap50_95": _mean(per_threshold) if truth_count else None,
            "truths": truth_count, "predictions": len(hits)}


def _ranked_matches(predictions: Sequence[Sequence[Mapping[str, Any]]], truths: Sequence[Sequence[Mapping[str, Any]]],
                    name: str, iou_threshold: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Return the scores and true-positive flags of all predictions of one class, and its truth count."""
    scores, hits, truth_count = [], [], 0
    for predicted, labeled in zip(predictions, truths):
        boxes, box_scores = _boxes_of(predicted, name)
        truth_boxes, _ = _boxes_of(labeled, name)
        matched, _ = match_boxes(boxes, box_scores, truth_boxes, iou_threshold=iou_threshold)
        scores.append(box_scores)
        hits.append(matched >= 0)
        truth_count += len(truth_boxes)
    return np.concatenate(scores), np.concatenate(hits), truth_count


def _boxes_of(listed: Sequence[Mapping[str, Any]], name: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Return the ``(B, 4)`` boxes and ``(B,)`` scores (1 when absent) of one class, or of all when None."""
    chosen = [box for box in listed if name is None or box["class"] == name]
    boxes = np.array([box["box"] for box in chosen], dtype=np.float64).reshape(-1, 4)
    scores = np.array([float(box.get("score", 1.0)) for box in chosen], dtype=np.float64)
    return boxes, scores


def recall_by_size(predictions: Sequence[Sequence[Mapping[str, Any]]], truths: Sequence[Sequence[Mapping[str, Any]]],
                   *, threshold: float, iou_threshold: float = 0.5) -> dict[str, dict[str, Any]]:
    """Return per size in ``SIZE_BOUNDS`` the truth count and the share found by boxes scoring above ``threshold``.

    A truth is found when a box of its class scoring above ``threshold``
    matches it at ``iou_threshold`` under the matching rule of this module.
    """
    areas, found = [], []
    for predicted, labeled in zip(predictions, truths):
        kept = [box for box in predicted if box["score"] > threshold]
        for name in sorted({box["class"] for box in labeled}):
            truth_boxes, _ = _boxes_of(labeled, name)
            boxes, scores = _boxes_of(kept, name)
            _, hit = match_boxes(boxes, scores, truth_boxes, iou_threshold=iou_threshold)
            areas.extend(_areas(truth_boxes))
            found.extend(hit)
    areas_array, found_array = np.asarray(areas, dtype=np.float64), np.asarray(found, dtype=bool)
    result = {}
    for size, (low, high) in SIZE_BOUNDS.items():
        inside = (areas_array >= low) & (areas_array < high)
        count = int(inside.sum())
        result[size] = {"truths": count, "recall": float(found_array[inside].mean()) if count else None}
    return result


def image_level(predictions: Sequence[Sequence[Mapping[str, Any]]], truths: Sequence[Sequence[Mapping[str, Any]]],
                *, threshold: float) -> ImageLevel:
    """Count escapes and overkills when an image is called defective if any box scores above ``threshold``."""
    called = np.array([any(box["score"] > threshold for box in boxes) for boxes in predictions], dtype=bool)
    defective = np.array([len(boxes) > 0 for boxes in truths], dtype=bool)
    escapes = int((defective & ~called).sum())
    overkills = int((~defective & called).sum())
    defective_count, good_count = int(defective.sum()), int((~defective).sum())
    return ImageLevel(
        threshold=float(threshold), defective_images=defective_count, good_images=good_count,
        escapes=escapes, overkills=overkills,
        escape_rate=escapes / defective_count if defective_count else None,
        overkill_rate=overkills / good_count if good_count else None,
    )


def _mean(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return float(np.mean(present)) if present else None
