"""Suspicious boxes: out-of-fold detectors and ``cleanlab.object_detection`` (ObjectLab).

1. One detector per fold (``defectlab.training.detection.train_detector``)
   learns the boxes of the other folds and predicts the fold's images. The
   fold detectors train for half the epochs ``choose_epochs`` gives the
   project's detector (at least 10), at the input size the project's
   detector would have, on whole images.
2. cleanlab 2.9 compares each image's labeled boxes with the predicted ones.
   ``get_label_quality_scores`` gives the image's label quality (0..1, low is
   suspicious) and ``find_label_issues`` decides which images are flagged.
3. The per-box scores (``compute_overlooked_box_scores``,
   ``compute_swap_box_scores``, ``compute_badloc_box_scores``) name the worst
   box of a flagged image and what is probably wrong with it:

   * ``missing_box``: the detector is sure of a defect where no box is.
   * ``wrong_class``: the detector is sure the boxed defect has another class.
   * ``badly_placed``: the detector's box of the same class overlaps the
     labeled box only partly. A labeled box that misses its defect altogether
     looks to cleanlab like a missing box beside a box on nothing. So when the
     worst problem is a missing box and a labeled box of that class overlaps
     no predicted box of its class, the labeled box is called badly placed,
     with the predicted box as the suggestion.

cleanlab 2.9 counts a predicted box as sure from a probability of 0.95
(``HIGH_PROBABILITY_THRESHOLD``) and ignores boxes under 0.5 when it judges
placement. A detector's box score is the peak of its defect map, not a
calibrated probability: a few dozen epochs leave clear defects at 0.8 to 0.95.
So before cleanlab reads them, the scores are mapped piecewise linearly:
the sure score (see ``choose_sure_score``) becomes 0.95, and 0.5 stays 0.5
when the sure score is above it. Issue texts give the detector's own scores.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from defectlab.data.pixels import StoredPixels, Subset
from defectlab.data.snapshot import SnapshotImage
from defectlab.errors import InvalidInputError
from defectlab.quality.region_labels import FOLDS, describe_box, region_issue
from defectlab.workspace import Workspace

__all__ = [
    "MATCH_SIMILARITY",
    "SURE_QUANTILE",
    "BoxLabelScores",
    "ScoreScale",
    "choose_sure_score",
    "find_suspicious_boxes",
    "out_of_fold_boxes",
    "score_box_labels",
    "to_cleanlab_boxes",
]

logger = logging.getLogger(__name__)

MIN_BOX_SCORE = 0.05
"""Lowest score of a predicted box handed to cleanlab."""

SURE_QUANTILE = 0.25
"""The sure score is this quantile of the scores of predicted boxes that match a labeled box.

NOTE: chosen on generated images, where the median left a planted missing box
at 0.92 below the sure score; KolektorSDD has not been compared.
"""

_SURE_PROBABILITY = 0.95
"""Probability from which cleanlab 2.9 counts a predicted box as sure (its ``HIGH_PROBABILITY_THRESHOLD``)."""

_LOW_PROBABILITY = 0.5
"""Probability under which cleanlab 2.9 ignores a predicted box when it judges placement."""

_MATCH_IOU = 0.5

MATCH_SIMILARITY = 0.5
"""An image is flagged when one of its per-box scores is at most this, besides those cleanlab flags itself.

cleanlab's per-box similarity is 0.9 x IoU + 0.1 x a closeness term. So 0.5
is about the IoU of 0.5 at which a detection usually counts as a match. Such
a score marks a labeled box that no predicted box of its class matches, a
sure box of another class that matches a labeled box, or a sure box that
overlaps no labeled box. cleanlab's own cut (per-class AP at IoU 0.5 to 0.95,
times 0.25 and 0.8) flags almost nothing when the fold detectors' boxes are
loose. On the generated test images that AP was 0.02 to 0.1.
"""

Box = tuple[int, float, float, float, float]


@dataclass(frozen=True)
class ScoreScale:
    """A piecewise linear map from detector scores to the probabilities cleanlab reads, and back.

    Attributes:
        scores: Knots on the detector's scale, increasing, from 0 to 1.
        probabilities: The same knots on cleanlab's scale.
    """

    scores: tuple[float, ...]
    probabilities: tuple[float, ...]

    @classmethod
    def from_sure_score(cls, sure: float | None) -> ScoreScale:
        """Return the map that takes ``sure`` to 0.95 and keeps 0.5 when ``sure`` is above it.

        With ``sure`` None, or 0.95 and above, every score stays as it is.
        """
        if sure is None or sure >= _SURE_PROBABILITY:
            return cls((0.0, 1.0), (0.0, 1.0))
        low = _LOW_PROBABILITY if sure > _LOW_PROBABILITY else sure * _LOW_PROBABILITY / _SURE_PROBABILITY
        return cls((0.0, low, sure, 1.0), (0.0, _LOW_PROBABILITY, _SURE_PROBABILITY, 1.0))

    def to_probability(self, score: float) -> float:
        return float(np.interp(score, self.scores, self.probabilities))

    def to_score(self, probability: float) -> float:
        return float(np.interp(probability, self.probabilities, self.scores))


@dataclass(frozen=True)
class BoxLabelScores:
    """cleanlab's scores of every searched image; per-box scores are 0..1, low is suspicious.

    Attributes:
        quality: Label quality per image, float64 ``(N,)``.
        flagged: Flagged images, lowest quality first, int64 ``(M,)``.
        overlooked: Per image, one score per predicted box, NaN where the box is not sure or overlaps a labeled box.
        swap: Per image, one score per labeled box: how sure another class is.
        badloc: Per image, one score per labeled box: how well it matches the predicted box of its class.
    """

    quality: np.ndarray
    flagged: np.ndarray
    overlooked: list[np.ndarray]
    swap: list[np.ndarray]
    badloc: list[np.ndarray]


def find_suspicious_boxes(workspace: Workspace, images: Sequence[SnapshotImage], pixels: StoredPixels,
                          class_names: Sequence[str], folds: np.ndarray) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Return a ``suspicious_label`` issue per flagged image, worst first, and every image's label quality.

    The label quality is float64 ``(N,)`` in 0..1, low is suspicious; see the module docstring.
    """
    from defectlab.training.detection import regions_to_boxes

    truths = [regions_to_boxes(image.regions, class_names, masks=workspace.blobs.get) for image in images]
    sizes = [(image.height, image.width) for image in images]
    predicted = out_of_fold_boxes(pixels, truths, class_names, folds, sizes=sizes)
    sure = choose_sure_score(truths, predicted, class_names)
    scale = ScoreScale.from_sure_score(sure)
    logger.info("the fold detectors' sure score is %s; cleanlab reads it as %.2f", sure, _SURE_PROBABILITY)
    labels, predictions = to_cleanlab_boxes(truths, predicted, class_names, scale=scale)
    scores = score_box_labels(labels, predictions)

    box_classes = list(class_names[1:])
    issues = [_issue(images[row], labels[row], predictions[row], scores, row, box_classes, scale)
              for row in scores.flagged]
    return issues, scores.quality


def choose_sure_score(truths: Sequence[Sequence[Box]], predicted: Sequence[Sequence[dict[str, Any]]],
                      class_names: Sequence[str]) -> float | None:
    """Return the ``SURE_QUANTILE`` quantile of the scores of predicted boxes that match a labeled box.

    A predicted box matches when a labeled box of its class overlaps it by an
    IoU of at least 0.5. Boxes that match nothing do not count, so a few label
    errors barely move the result.

    Returns:
        The score, or None when no predicted box matches.
    """
    matched = []
    for listed, boxes in zip(truths, predicted):
        for box in boxes:
            index = list(class_names).index(box["class"])
            if any(row[0] == index and _iou(row[1:], box["box"]) >= _MATCH_IOU for row in listed):
                matched.append(float(box["score"]))
    return float(np.quantile(matched, SURE_QUANTILE)) if matched else None


def out_of_fold_boxes(pixels: Sequence[np.ndarray], truths: Sequence[Sequence[Box]], class_names: Sequence[str],
                      folds: np.ndarray, *, sizes: Sequence[tuple[int, int]]) -> list[list[dict[str, Any]]]:
    """Predict every image with the detector trained on the other folds.

    Args:
        pixels: Decoded images, read lazily.
        truths: Per image, labeled boxes ``(class_index, x_min, y_min, x_max, y_max)``.
        class_names: Class per index, ``ok`` first.
        folds: Fold per image, ``0..FOLDS-1``; every fold's complement needs a box.
        sizes: Per image, its ``(height, width)``; they set the fold detectors' input size.

    Returns:
        Per image, the boxes ``Detector.predict`` returns (scores at least ``MIN_BOX_SCORE``).
    """
    from defectlab.training.detection import choose_epochs, choose_input_size

    input_size = choose_input_size(sizes)
    predicted: list[list[dict[str, Any]]] = [[] for _ in range(len(pixels))]
    for fold in range(FOLDS):
        train = np.flatnonzero(folds != fold).tolist()
        held_out = np.flatnonzero(folds == fold).tolist()
        epochs = max(10, choose_epochs(len(train)) // 2)
        predictions = _fold_predictions(pixels, truths, class_names, train, held_out, input_size, epochs, fold)
        for row, boxes in zip(held_out, predictions):
            predicted[row] = boxes
    return predicted


def _fold_predictions(pixels: Sequence[np.ndarray], truths: Sequence[Sequence[Box]], class_names: Sequence[str],
                      train: list[int], held_out: list[int], input_size: tuple[int, int], epochs: int,
                      fold: int) -> list[list[dict[str, Any]]]:
    from defectlab.training.detection import train_detector

    logger.info("fold %d of %d: training a detector on %d images for %d epochs", fold + 1, FOLDS, len(train), epochs)
    detector = train_detector(Subset(pixels, train), [truths[row] for row in train], class_names,
                              input_size=input_size, epochs=epochs, seed=fold)
    return detector.predict(Subset(pixels, held_out), min_score=MIN_BOX_SCORE)


def to_cleanlab_boxes(truths: Sequence[Sequence[Box]], predicted: Sequence[Sequence[dict[str, Any]]],
                      class_names: Sequence[str], *, scale: ScoreScale | None = None,
                      ) -> tuple[list[dict[str, np.ndarray]], list[list[np.ndarray]]]:
    """Convert labeled and predicted boxes to cleanlab's object detection inputs.

    cleanlab numbers the box classes from 0, so class ``class_names[k]``
    (``k >= 1``, as ``regions_to_boxes`` numbers them) becomes ``k - 1``.

    Args:
        truths: Per image, ``(class_index, x_min, y_min, x_max, y_max)`` with ``class_index`` in ``1..C-1``.
        predicted: Per image, ``{"class", "box", "score"}`` as ``Detector.predict`` returns them.
        class_names: Class per index, ``ok`` first.
        scale: Map of the box scores to cleanlab's probabilities; scores stay as they are when None.

    Returns:
        ``labels``: per image ``{"bboxes": float64 (L, 4), "labels": int64 (L,)}``.
        ``predictions``: per image, one float64 ``(M_k, 5)`` array per box class of
        ``[x_min, y_min, x_max, y_max, score]`` rows, highest score first.

    Raises:
        InvalidInputError: The counts differ, or a box names a class outside ``class_names``.
    """
    if len(truths) != len(predicted):
        raise InvalidInputError(f"{len(truths)} labeled box lists but {len(predicted)} predicted ones were given; "
                                "pass one of each per image")
    box_classes = list(class_names[1:])
    labels = [_label_arrays(listed, len(box_classes), image) for image, listed in enumerate(truths)]
    scale = scale or ScoreScale.from_sure_score(None)
    predictions = [_prediction_arrays(listed, box_classes, image, scale) for image, listed in enumerate(predicted)]
    return labels, predictions


def _label_arrays(listed: Sequence[Box], class_count: int, image: int) -> dict[str, np.ndarray]:
    rows = np.asarray(listed, dtype=np.float64).reshape(-1, 5)
    outside = rows[(rows[:, 0] < 1) | (rows[:, 0] > class_count)]
    if len(outside):
        raise InvalidInputError(f"labeled box {outside[0].tolist()} of image {image} has class index "
                                f"{outside[0][0]:g}; box classes are 1 to {class_count}")
    return {"bboxes": rows[:, 1:].copy(), "labels": rows[:, 0].astype(np.int64) - 1}


def _prediction_arrays(listed: Sequence[dict[str, Any]], box_classes: list[str], image: int,
                       scale: ScoreScale) -> list[np.ndarray]:
    per_class: list[list[list[float]]] = [[] for _ in box_classes]
    for box in sorted(listed, key=lambda found: -found["score"]):
        if box["class"] not in box_classes:
            raise InvalidInputError(f"predicted box class {box['class']!r} of image {image} is not one of "
                                    f"{box_classes}")
        probability = scale.to_probability(float(box["score"]))
        per_class[box_classes.index(box["class"])].append([*map(float, box["box"]), probability])
    arrays = [np.asarray(rows, dtype=np.float64).reshape(-1, 5) for rows in per_class]
    # cleanlab 2.9 reads a three-item prediction as (boxes, labels, scores) when the first item has 5 rows
    # and the other two have equal lengths. Dropping the weakest box of the first class avoids that reading.
    if len(arrays) == 3 and len(arrays[0]) == 5 and len(arrays[1]) == len(arrays[2]):
        arrays[0] = arrays[0][:4]
    return arrays


def score_box_labels(labels: list[dict[str, np.ndarray]], predictions: list[list[np.ndarray]]) -> BoxLabelScores:
    """Score every image's boxes with cleanlab's ObjectLab, as ``to_cleanlab_boxes`` returns the inputs.

    Raises:
        InvalidInputError: No image is given.
    """
    from cleanlab.object_detection.filter import find_label_issues
    from cleanlab.object_detection.rank import (
        compute_badloc_box_scores,
        compute_overlooked_box_scores,
        compute_swap_box_scores,
        get_label_quality_scores,
    )

    if not labels:
        raise InvalidInputError("no image was given; the box label search needs at least one image")

    quality = np.asarray(get_label_quality_scores(labels, predictions, verbose=False), dtype=np.float64)
    overlooked = compute_overlooked_box_scores(labels=labels, predictions=predictions)
    swap = compute_swap_box_scores(labels=labels, predictions=predictions)
    badloc = compute_badloc_box_scores(labels=labels, predictions=predictions)
    is_issue = np.asarray(find_label_issues(labels, predictions), dtype=bool)
    worst = np.array([_lowest(*boxes) for boxes in zip(overlooked, swap, badloc)])
    flagged = np.flatnonzero(is_issue | (worst <= MATCH_SIMILARITY))
    flagged = flagged[np.argsort(quality[flagged], kind="stable")]
    return BoxLabelScores(quality, flagged.astype(np.int64), overlooked, swap, badloc)


def _lowest(*scores: np.ndarray) -> float:
    values = np.concatenate([np.asarray(part, dtype=np.float64).ravel() for part in scores])
    values = values[~np.isnan(values)]
    return float(values.min()) if values.size else 1.0


def _issue(image: SnapshotImage, label: dict[str, np.ndarray], prediction: list[np.ndarray], scores: BoxLabelScores,
           row: int, box_classes: list[str], scale: ScoreScale) -> dict[str, Any]:
    worst = _worst_box(scores.overlooked[row], scores.swap[row], scores.badloc[row])
    quality = float(scores.quality[row])
    if worst is None:
        return region_issue(image, quality, problem="disagreement", box=None, given="boxes as labeled",
                            suggested="boxes as predicted", action="check the boxes",
                            detail="the labeled boxes disagree with the detectors of the other folds")
    kind, index = worst
    # Back on the detector's own scale, for the issue texts.
    prediction = [np.column_stack([rows[:, :4], [scale.to_score(value) for value in rows[:, 4]]])
                  for rows in prediction]
    predicted = [(k, values) for k, rows in enumerate(prediction) for values in rows]
    if kind == "overlooked":
        class_index, values = predicted[index]
        misplaced = _unmatched_box(label, prediction, class_index, scale.to_score(_LOW_PROBABILITY))
        if misplaced is None:
            return _missing(image, quality, box_classes[class_index], values)
        return _misplaced(image, quality, box_classes[class_index], label["bboxes"][misplaced], values)
    given = box_classes[int(label["labels"][index])]
    if kind == "swap":
        sure = scale.to_score(_SURE_PROBABILITY)
        return _swapped(image, quality, given, label["bboxes"][index],
                        _other_class(label, index, predicted, sure), box_classes)
    match = _same_class(label, index, predicted)
    return _misplaced(image, quality, given, label["bboxes"][index], match)


def _worst_box(overlooked: np.ndarray, swap: np.ndarray, badloc: np.ndarray) -> tuple[str, int] | None:
    """Return the subtype and box index of the lowest per-box score of one image, or None without scores."""
    candidates = [(float(score), kind, index) for kind, values in
                  (("overlooked", overlooked), ("swap", swap), ("badloc", badloc))
                  for index, score in enumerate(np.asarray(values, dtype=np.float64)) if not np.isnan(score)]
    if not candidates:
        return None
    _, kind, index = min(candidates)
    return kind, index


def _unmatched_box(label: dict[str, np.ndarray], prediction: list[np.ndarray], class_index: int,
                   low: float) -> int | None:
    """Return a labeled box of a class that no predicted box of that class scoring above ``low`` overlaps, or None.

    cleanlab ignores the boxes at or below ``low`` when it judges placement, so they do not count here either.
    """
    candidates = [values for values in prediction[class_index] if values[4] > low]
    for index in np.flatnonzero(label["labels"] == class_index):
        if not any(_iou(label["bboxes"][index], values[:4]) > 0 for values in candidates):
            return int(index)
    return None


def _other_class(label: dict[str, np.ndarray], index: int, predicted: list[tuple[int, np.ndarray]],
                 sure: float) -> tuple[int, np.ndarray] | None:
    """Return the predicted box of another class, scoring at least ``sure``, that overlaps the labeled box most."""
    given = int(label["labels"][index])
    others = [(k, values) for k, values in predicted if k != given and values[4] >= sure]
    if not others:
        return None
    return max(others, key=lambda found: _iou(label["bboxes"][index], found[1][:4]))


def _same_class(label: dict[str, np.ndarray], index: int,
                predicted: list[tuple[int, np.ndarray]]) -> np.ndarray | None:
    given = int(label["labels"][index])
    same = [values for k, values in predicted if k == given]
    if not same:
        return None
    return max(same, key=lambda values: _iou(label["bboxes"][index], values[:4]))


def _iou(first: Sequence[float], second: Sequence[float]) -> float:
    width = max(0.0, min(first[2], second[2]) - max(first[0], second[0]))
    height = max(0.0, min(first[3], second[3]) - max(first[1], second[1]))
    overlap = width * height
    union = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1]) - overlap
    return float(overlap / union) if union > 0 else 0.0


def _missing(image: SnapshotImage, quality: float, name: str, values: np.ndarray) -> dict[str, Any]:
    detail = (f"no labeled box where the detectors of the other folds find a {name} with score {values[4]:.2f}, "
              f"at {describe_box(values[:4])}")
    return region_issue(image, quality, problem="missing_box", box=values[:4], given="no box",
                        suggested=f"{name} box", detail=detail,
                        action=f"add a {name} box there, or confirm that there is no defect")


def _swapped(image: SnapshotImage, quality: float, given: str, box: np.ndarray,
             other: tuple[int, np.ndarray] | None, box_classes: list[str]) -> dict[str, Any]:
    suggested = box_classes[other[0]] if other is not None else "another class"
    seen = f", with score {other[1][4]:.2f}" if other is not None else ""
    detail = (f"the box at {describe_box(box)} is labeled {given}, but the detectors of the other folds "
              f"see a {suggested} there{seen}")
    return region_issue(image, quality, problem="wrong_class", box=box, given=given, suggested=suggested,
                        detail=detail, action="correct the class of the box, or confirm it")


def _misplaced(image: SnapshotImage, quality: float, given: str, box: np.ndarray,
               match: np.ndarray | None) -> dict[str, Any]:
    if match is None:
        detail = f"the {given} box at {describe_box(box)} matches no box the detectors of the other folds find"
        return region_issue(image, quality, problem="badly_placed", box=box, given=given, suggested="no box",
                            detail=detail, action="redraw or remove the box, or confirm it")
    overlap = _iou(box, match[:4])
    relation = f"overlaps by IoU {overlap:.2f}" if overlap > 0 else "does not overlap"
    detail = (f"the {given} box at {describe_box(box)} {relation} the {given} that the detectors of the other "
              f"folds find at {describe_box(match[:4])}")
    return region_issue(image, quality, problem="badly_placed", box=box, given=given,
                        suggested=f"{given} box at {describe_box(match[:4])}", detail=detail,
                        action="redraw the box around the defect, or confirm it",
                        suggested_box=[round(float(value), 1) for value in match[:4]])
