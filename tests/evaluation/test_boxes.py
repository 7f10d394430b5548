"""Hand-computed checks of box IoU, matching, AP, recall by size and the image-level view."""

from __future__ import annotations

import json

import numpy as np
import pytest

from defectlab.errors import InvalidInputError
from defectlab.evaluation.boxes import (
    average_precision,
    box_iou,
    evaluate_boxes,
    image_level,
    match_boxes,
    recall_by_size,
)

CLASSES = ["ok", "crack", "dent"]


def truth(name: str, box: list[float]) -> dict:
    return {"class": name, "box": box}


def predicted(name: str, box: list[float], score: float) -> dict:
    return {"class": name, "box": box, "score": score}


def test_box_iou_of_overlapping_squares():
    # Overlap 1 x 1 = 1; union 4 + 4 - 1 = 7.
    ious = box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 1, 3, 3], [5, 5, 6, 6], [0, 0, 2, 2]]))
    assert ious.shape == (1, 3)
    assert ious[0, 0] == pytest.approx(1 / 7)
    assert ious[0, 1] == 0.0
    assert ious[0, 2] == 1.0


def test_box_iou_of_empty_boxes_is_zero():
    ious = box_iou(np.array([[1, 1, 1, 1]]), np.array([[1, 1, 1, 1]]))
    assert ious[0, 0] == 0.0


def test_box_iou_of_empty_inputs():
    assert box_iou(np.zeros((0, 4)), np.array([[0, 0, 1, 1]])).shape == (0, 1)


def test_match_duplicate_is_false_positive():
    truths = np.array([[0, 0, 10, 10]])
    boxes = np.array([[0, 0, 10, 9], [0, 0, 10, 10]])
    matched, found = match_boxes(boxes, np.array([0.6, 0.9]), truths, iou_threshold=0.5)
    # The higher score (the second box) matches first, so the first box is a duplicate.
    assert matched.tolist() == [-1, 0]
    assert found.tolist() == [True]


def test_match_takes_best_unmatched_truth():
    # The prediction overlaps truth 0 by IoU 0.5 and truth 1 by IoU 0.9, so it takes truth 1.
    truths = np.array([[0, 0, 10, 10], [0, 0, 10, 18]])
    boxes = np.array([[0, 0, 10, 20]])
    matched, found = match_boxes(boxes, np.array([0.8]), truths, iou_threshold=0.5)
    assert matched.tolist() == [1]
    assert found.tolist() == [False, True]


def test_match_below_threshold_is_false_positive():
    matched, found = match_boxes(np.array([[0, 0, 10, 4]]), np.array([0.9]), np.array([[0, 0, 10, 10]]),
                                 iou_threshold=0.5)
    assert matched.tolist() == [-1]
    assert found.tolist() == [False]


def test_average_precision_by_hand():
    # Ranked: hit, miss, hit; three truths. Recall 1/3, 1/3, 2/3; precision 1, 1/2, 2/3.
    # Envelope: 1 up to recall 1/3 (points 0.00 to 0.33: 34), 2/3 up to 2/3 (0.34 to 0.66: 33),
    # then 0 (0.67 to 1.00: 34). AP = (34 * 1 + 33 * 2/3) / 101 = 56 / 101.
    ap = average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), truth_count=3)
    assert ap == pytest.approx(56 / 101)


def test_average_precision_false_positive_first():
    ap = average_precision(np.array([0.9, 0.8]), np.array([False, True]), truth_count=1)
    assert ap == pytest.approx(0.5)


def test_average_precision_misses_after_full_recall():
    ap = average_precision(np.array([0.9, 0.8, 0.1]), np.array([True, True, False]), truth_count=2)
    assert ap == pytest.approx(1.0)


def test_average_precision_without_predictions():
    assert average_precision(np.zeros(0), np.zeros(0, dtype=bool), truth_count=2) == 0.0


def test_average_precision_without_truth():
    assert average_precision(np.array([0.9]), np.array([False]), truth_count=0) is None


def test_evaluate_boxes_per_class_and_mean():
    truths = [[truth("crack", [0, 0, 10, 10])], [truth("crack", [20, 20, 40, 30])], []]
    predictions = [
        [predicted("crack", [0, 0, 10, 10], 0.9), predicted("crack", [1, 0, 10, 10], 0.8)],
        [predicted("crack", [20, 20, 40, 30], 0.7)],
        [predicted("crack", [5, 5, 9, 9], 0.95)],
    ]
    evaluation = evaluate_boxes(predictions, truths, CLASSES, threshold=0.5)
    # Ranked: miss (0.95), hit (0.9), duplicate (0.8), hit (0.7). Precision at the hits: 1/2, 2/4.
    # Envelope 1/2 at every recall point, so AP = 0.5 at every IoU threshold.
    crack = evaluation.per_class["crack"]
    assert crack["ap50"] == pytest.approx(0.5)
    assert crack["ap50_95"] == pytest.approx(0.5)
    assert crack["truths"] == 2
    assert crack["predictions"] == 4
    assert evaluation.per_class["dent"]["ap50"] is None
    assert evaluation.per_class["dent"]["ap50_95"] is None
    assert evaluation.ap50 == pytest.approx(0.5)


def test_evaluate_boxes_ap50_95_by_hand():
    # IoU 80 / 100 = 0.8: a hit at thresholds 0.5 to 0.8 (7 of 10), a miss at 0.85 to 0.95.
    evaluation = evaluate_boxes([[predicted("crack", [0, 0, 10, 8], 0.9)]], [[truth("crack", [0, 0, 10, 10])]],
                                CLASSES, threshold=0.5)
    assert evaluation.ap50 == pytest.approx(1.0)
    assert evaluation.ap50_95 == pytest.approx(0.7)


def test_evaluate_boxes_wrong_class_misses():
    evaluation = evaluate_boxes([[predicted("dent", [0, 0, 10, 10], 0.9)]], [[truth("crack", [0, 0, 10, 10])]],
                                CLASSES, threshold=0.5)
    assert evaluation.per_class["crack"]["ap50"] == 0.0
    assert evaluation.per_class["dent"]["ap50"] is None
    assert evaluation.ap50 == 0.0


def test_evaluate_boxes_without_truth():
    evaluation = evaluate_boxes([[predicted("crack", [0, 0, 10, 10], 0.9)]], [[]], CLASSES, threshold=0.5)
    assert evaluation.ap50 is None
    assert evaluation.ap50_95 is None


def test_evaluate_boxes_is_json_ready():
    evaluation = evaluate_boxes([[]], [[truth("crack", [0, 0, 10, 10])]], CLASSES, threshold=0.5)
    data = json.loads(json.dumps(evaluation.to_dict()))
    assert data["image_level"]["escapes"] == 1


@pytest.mark.parametrize(
    ("predictions", "truths", "message"),
    [
        ([[]], [[], []], "1 prediction lists but 2 truth lists"),
        ([[predicted("scratch", [0, 0, 1, 1], 0.5)]], [[]], "'scratch'"),
        ([[]], [[truth("spot", [0, 0, 1, 1])]], "'spot'"),
    ],
)
def test_evaluate_boxes_rejects_invalid_input(predictions, truths, message):
    with pytest.raises(InvalidInputError, match=message):
        evaluate_boxes(predictions, truths, CLASSES, threshold=0.5)


def test_recall_by_size_uses_coco_bounds():
    # Areas: 20 x 20 = 400 (small), 50 x 50 = 2500 (medium), 100 x 100 = 10000 (large),
    # 32 x 32 = 1024 (medium: the bound belongs to the larger size).
    truths = [[truth("crack", [0, 0, 20, 20]), truth("crack", [100, 100, 150, 150])],
              [truth("crack", [0, 0, 100, 100]), truth("dent", [0, 0, 32, 32])]]
    predictions = [[predicted("crack", [0, 0, 20, 20], 0.9), predicted("crack", [100, 100, 150, 150], 0.2)],
                   [predicted("crack", [0, 0, 100, 100], 0.6), predicted("crack", [0, 0, 32, 32], 0.9)]]
    recall = recall_by_size(predictions, truths, threshold=0.5)
    assert recall["small"] == {"truths": 1, "recall": 1.0}
    # The medium crack's box scores below the threshold and the dent's box has the wrong class.
    assert recall["medium"] == {"truths": 2, "recall": 0.0}
    assert recall["large"] == {"truths": 1, "recall": 1.0}


def test_recall_by_size_without_truth_is_none():
    recall = recall_by_size([[]], [[]], threshold=0.5)
    assert recall["small"] == {"truths": 0, "recall": None}


def test_image_level_escapes_and_overkills():
    truths = [[truth("crack", [0, 0, 5, 5])], [truth("crack", [0, 0, 5, 5])], [], [], []]
    # Image 1 scores exactly the threshold, which is not above it: an escape.
    predictions = [[predicted("crack", [0, 0, 5, 5], 0.9)], [predicted("crack", [9, 9, 10, 10], 0.5)],
                   [predicted("dent", [0, 0, 5, 5], 0.7)], [predicted("crack", [0, 0, 5, 5], 0.2)], []]
    result = image_level(predictions, truths, threshold=0.5)
    assert result.defective_images == 2
    assert result.good_images == 3
    assert result.escapes == 1
    assert result.overkills == 1
    assert result.escape_rate == pytest.approx(0.5)
    assert result.overkill_rate == pytest.approx(1 / 3)


def test_image_level_rates_without_images():
    result = image_level([[]], [[]], threshold=0.5)
    assert result.escape_rate is None
    assert result.overkill_rate == 0.0
