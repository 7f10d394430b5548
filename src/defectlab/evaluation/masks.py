"""Measure predicted class masks against labeled masks, in plain NumPy.

A mask is an integer ``(H, W)`` class-index map: 0 is ``ok`` (background),
``1 .. C-1`` are the defect classes, and ``IGNORE_INDEX`` (255) marks pixels
that count for nothing, such as a defective image whose defect was never drawn.

IoU and Dice are dataset-level figures, as the PASCAL VOC and Cityscapes
benchmarks compute them. The intersection, the truth pixels and the predicted
pixels of each class are summed over all images first, and the ratio is taken
once. A large defect therefore weighs more than a small one, and an image
without the class adds only its false positives. A class that is neither in
the truth nor in the prediction of any image has IoU and Dice ``None``, not 1,
because nothing was measured. A class in the truth that was never predicted,
or predicted where the truth has none, has IoU 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from defectlab.errors import InvalidInputError

__all__ = [
    "IGNORE_INDEX",
    "OK_INDEX",
    "MaskEvaluation",
    "confusion_counts",
    "dice_per_class",
    "evaluate_masks",
    "iou_per_class",
    "mean_defect_iou",
    "to_class_map",
]

IGNORE_INDEX = 255
"""Mask value of a pixel that is left out of training and of every metric."""

OK_INDEX = 0
"""Class index of ``ok`` (background) in every mask."""


@dataclass(frozen=True)
class MaskEvaluation:
    """Pixel metrics of one model on one set of images.

    Attributes:
        class_names: Class per index; index 0 is ``ok``.
        images: Images measured.
        confusion: ``(C, C)`` pixel counts summed over the images; row is the truth,
            column the prediction; ignored pixels are left out.
        iou: Per class, intersection over union in [0, 1], or None when the class
            is in neither truth nor prediction.
        dice: Per class, ``2 * intersection / (truth + predicted)`` in [0, 1], or None
            like ``iou``.
        mean_defect_iou: Mean of ``iou`` over the defect classes (all but index 0)
            that have a value; None when none has.
    """

    class_names: list[str]
    images: int
    confusion: np.ndarray
    iou: list[float | None]
    dice: list[float | None]
    mean_defect_iou: float | None

    def to_dict(self) -> dict[str, Any]:
        """Return the metrics as plain values, ready for JSON, with per-class figures keyed by name."""
        values = asdict(self)
        values["confusion"] = self.confusion.tolist()
        values["iou"] = dict(zip(self.class_names, self.iou))
        values["dice"] = dict(zip(self.class_names, self.dice))
        return values


def confusion_counts(truth: np.ndarray, predicted: np.ndarray, class_count: int, *,
                     ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Count the pixels of one image per (true class, predicted class) pair.

    Args:
        truth: Integer class-index mask ``(H, W)``, values in ``0 .. class_count - 1``
            or ``ignore_index``.
        predicted: Integer class-index mask of the same shape, values in
            ``0 .. class_count - 1``.
        class_count: Number of classes C, ``ok`` included.
        ignore_index: Truth value of pixels to leave out.

    Returns:
        int64 ``(C, C)``; entry ``[t, p]`` counts the pixels of true class t predicted as p.

    Raises:
        InvalidInputError: The shapes differ, or a value is outside the classes.
    """
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if truth.shape != predicted.shape:
        raise InvalidInputError(f"predicted mask of shape {predicted.shape} does not match the truth mask "
                                f"of shape {truth.shape}; resize the prediction to the image's size")
    valid = truth != ignore_index
    true_values = truth[valid].astype(np.int64)
    predicted_values = predicted[valid].astype(np.int64)
    _check_values(true_values, class_count, "truth")
    _check_values(predicted_values, class_count, "predicted")

    pairs = np.bincount(true_values * class_count + predicted_values, minlength=class_count * class_count)
    return pairs.reshape(class_count, class_count)


def _check_values(values: np.ndarray, class_count: int, role: str) -> None:
    bad = values[(values < 0) | (values >= class_count)]
    if bad.size:
        raise InvalidInputError(
            f"{role} mask has class values {sorted(set(bad.tolist()))[:5]} outside 0..{class_count - 1}; "
            f"masks hold class indices, with {IGNORE_INDEX} for ignored pixels"
        )


def iou_per_class(confusion: np.ndarray) -> list[float | None]:
    """Return per class ``intersection / (truth + predicted - intersection)`` from a ``(C, C)`` confusion matrix.

    A class with no truth and no predicted pixel gets None.
    """
    intersection, truth, predicted = _totals(confusion)
    union = truth + predicted - intersection
    return [float(i / u) if u > 0 else None for i, u in zip(intersection, union)]


def dice_per_class(confusion: np.ndarray) -> list[float | None]:
    """Return per class ``2 * intersection / (truth + predicted)`` from a ``(C, C)`` confusion matrix.

    A class with no truth and no predicted pixel gets None.
    """
    intersection, truth, predicted = _totals(confusion)
    total = truth + predicted
    return [float(2 * i / t) if t > 0 else None for i, t in zip(intersection, total)]


def _totals(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    counts = np.asarray(confusion, dtype=np.int64)
    return np.diag(counts), counts.sum(axis=1), counts.sum(axis=0)


def mean_defect_iou(iou: Sequence[float | None]) -> float | None:
    """Return the mean IoU over the defect classes (indices 1 and up) that have a value; None when none has."""
    values = [value for value in list(iou)[1:] if value is not None]
    return float(np.mean(values)) if values else None


def evaluate_masks(truths: Iterable[np.ndarray], predictions: Iterable[np.ndarray],
                   class_names: Sequence[str], *, ignore_index: int = IGNORE_INDEX) -> MaskEvaluation:
    """Accumulate pixel counts over image pairs and return IoU, Dice and the mean defect IoU.

    Args:
        truths: Per image, the labeled class-index mask ``(H, W)``.
        predictions: Per image, the predicted class-index mask of the same shape
            (``to_class_map`` makes one from probabilities). Read one pair at a time.
        class_names: Class per index, ``ok`` first.
        ignore_index: Truth value of pixels to leave out.

    Raises:
        InvalidInputError: The two sequences differ in length, or a pair differs in shape.
    """
    class_count = len(class_names)
    confusion = np.zeros((class_count, class_count), dtype=np.int64)
    images = 0
    sentinel = object()
    truth_iterator, prediction_iterator = iter(truths), iter(predictions)
    for truth in truth_iterator:
        predicted = next(prediction_iterator, sentinel)
        if predicted is sentinel:
            raise InvalidInputError(f"{images + 1} truth masks were given but only {images} predicted masks; "
                                    "pass one prediction per truth mask")
        confusion += confusion_counts(truth, predicted, class_count, ignore_index=ignore_index)
        images += 1
    if next(prediction_iterator, sentinel) is not sentinel:
        raise InvalidInputError(f"more predicted masks than the {images} truth masks were given; "
                                "pass one prediction per truth mask")

    iou = iou_per_class(confusion)
    return MaskEvaluation(list(class_names), images, confusion, iou, dice_per_class(confusion), mean_defect_iou(iou))


def to_class_map(probabilities: np.ndarray, *, min_defect_probability: float | None = None,
                 one_class_per_region: bool = False) -> np.ndarray:
    """Turn class probabilities ``(C, H, W)`` into a class-index mask ``(H, W)`` uint8.

    Args:
        probabilities: Per class and pixel, a probability; class 0 is ``ok``.
        min_defect_probability: None takes the most probable class at each pixel.
            A value in (0, 1) calls a pixel defective when its defect probability
            ``1 - p(ok)`` reaches it, and gives it the most probable defect class;
            other pixels are ``ok``. A value below 0.5 finds more defect pixels
            (fewer escapes, more overkill) than the plain rule.
        one_class_per_region: Give every connected region of defect pixels
            (8-connected) the one defect class with the largest summed probability
            over the region, because one defect is of one class. Without it,
            neighbouring pixels of one defect can split between two similar classes.

    Raises:
        InvalidInputError: ``probabilities`` is not 3-dimensional, or the minimum
            is outside (0, 1).
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 3 or probabilities.shape[0] < 1:
        raise InvalidInputError(f"probabilities of shape {probabilities.shape} are invalid; expected (C, H, W)")
    if min_defect_probability is not None and not 0.0 < min_defect_probability < 1.0:
        raise InvalidInputError(f"minimum defect probability {min_defect_probability} is invalid; "
                                "use a value between 0 and 1, or None for the most probable class")

    if min_defect_probability is None or probabilities.shape[0] == 1:
        class_map = probabilities.argmax(axis=0).astype(np.uint8)
    else:
        defect_class = probabilities[1:].argmax(axis=0).astype(np.uint8) + 1
        is_defect = 1.0 - probabilities[OK_INDEX] >= min_defect_probability
        class_map = np.where(is_defect, defect_class, OK_INDEX).astype(np.uint8)
    if one_class_per_region and probabilities.shape[0] > 2:
        _vote_per_region(class_map, probabilities)
    return class_map


def _vote_per_region(class_map: np.ndarray, probabilities: np.ndarray) -> None:
    """Give each 8-connected defect region of ``class_map`` its most probable defect class, in place."""
    from scipy import ndimage

    regions, count = ndimage.label(class_map != OK_INDEX, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return
    index = np.arange(1, count + 1)
    mass = np.stack([ndimage.sum_labels(plane, regions, index) for plane in probabilities[1:]])
    winners = np.concatenate([[OK_INDEX], mass.argmax(axis=0) + 1]).astype(np.uint8)
    inside = regions > 0
    class_map[inside] = winners[regions[inside]]
