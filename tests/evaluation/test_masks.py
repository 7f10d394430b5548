"""Hand-computed checks of the pixel metrics in defectlab.evaluation.masks."""

from __future__ import annotations

import numpy as np
import pytest

from defectlab.errors import InvalidInputError
from defectlab.evaluation.masks import (
    IGNORE_INDEX,
    confusion_counts,
    dice_per_class,
    evaluate_masks,
    iou_per_class,
    mean_defect_iou,
    to_class_map,
)

CLASSES = ["ok", "scratch", "spot", "dent"]

# Two 2 x 4 images. Truth of image A: scratch at (0, 0), (0, 1), spot at (1, 3).
# Prediction of image A: scratch at (0, 1), (0, 2), ok elsewhere.
TRUTH_A = np.array([[1, 1, 0, 0],
                    [0, 0, 0, 2]], dtype=np.uint8)
PRED_A = np.array([[0, 1, 1, 0],
                   [0, 0, 0, 0]], dtype=np.uint8)
# Image B: scratch at (1, 0) found, one ignored pixel predicted as spot, a false spot at (0, 3).
TRUTH_B = np.array([[0, 0, 0, 0],
                    [1, IGNORE_INDEX, 0, 0]], dtype=np.uint8)
PRED_B = np.array([[0, 0, 0, 2],
                   [1, 2, 0, 0]], dtype=np.uint8)


def test_confusion_counts_one_image():
    counts = confusion_counts(TRUTH_A, PRED_A, 4)

    assert counts.shape == (4, 4)
    assert counts[1, 1] == 1  # (0, 1)
    assert counts[1, 0] == 1  # (0, 0) missed
    assert counts[0, 1] == 1  # (0, 2) false scratch
    assert counts[2, 0] == 1  # spot missed
    assert counts[0, 0] == 4
    assert counts.sum() == 8


def test_confusion_counts_leave_ignored_pixels_out():
    counts = confusion_counts(TRUTH_B, PRED_B, 4)

    assert counts.sum() == 7
    assert counts[:, 2].sum() == 1  # only the false spot at (0, 3)


def test_dataset_iou_sums_before_dividing():
    evaluation = evaluate_masks([TRUTH_A, TRUTH_B], [PRED_A, PRED_B], CLASSES)

    # scratch: intersection 1 + 1, truth 2 + 1, predicted 2 + 1 -> 2 / (3 + 3 - 2)
    assert evaluation.iou[1] == pytest.approx(2 / 4)
    # spot: intersection 0, truth 1, predicted 1 -> 0 / 2
    assert evaluation.iou[2] == 0.0
    # ok: intersection 4 + 5, truth 5 + 6, predicted 6 + 5
    assert evaluation.iou[0] == pytest.approx(9 / (11 + 11 - 9))
    assert evaluation.images == 2


def test_dataset_dice_sums_before_dividing():
    evaluation = evaluate_masks([TRUTH_A, TRUTH_B], [PRED_A, PRED_B], CLASSES)

    assert evaluation.dice[1] == pytest.approx(2 * 2 / (3 + 3))
    assert evaluation.dice[2] == 0.0


def test_class_absent_everywhere_gets_none():
    evaluation = evaluate_masks([TRUTH_A, TRUTH_B], [PRED_A, PRED_B], CLASSES)

    assert evaluation.iou[3] is None
    assert evaluation.dice[3] is None


def test_mean_defect_iou_skips_none_and_ok():
    evaluation = evaluate_masks([TRUTH_A, TRUTH_B], [PRED_A, PRED_B], CLASSES)

    assert evaluation.mean_defect_iou == pytest.approx((0.5 + 0.0) / 2)
    assert mean_defect_iou([0.9, None, None]) is None
    assert mean_defect_iou([0.1, 0.4, None, 0.8]) == pytest.approx(0.6)


def test_class_only_predicted_has_iou_zero():
    truth = np.zeros((2, 2), dtype=np.uint8)
    predicted = np.array([[0, 3], [0, 0]], dtype=np.uint8)

    iou = iou_per_class(confusion_counts(truth, predicted, 4))

    assert iou[3] == 0.0
    assert iou[1] is None


def test_perfect_prediction_scores_one():
    confusion = confusion_counts(TRUTH_A, TRUTH_A, 4)

    assert iou_per_class(confusion)[:3] == [1.0, 1.0, 1.0]
    assert dice_per_class(confusion)[:3] == [1.0, 1.0, 1.0]


def test_to_dict_keys_figures_by_class_name():
    values = evaluate_masks([TRUTH_A], [PRED_A], CLASSES).to_dict()

    assert values["iou"]["scratch"] == pytest.approx(1 / 3)
    assert values["iou"]["dent"] is None
    assert values["confusion"][1][1] == 1


@pytest.mark.parametrize(
    ("truths", "predictions", "message"),
    [
        ([TRUTH_A], [PRED_A[:, :3]], "does not match"),
        ([TRUTH_A, TRUTH_B], [PRED_A], "only 1 predicted"),
        ([TRUTH_A], [PRED_A, PRED_B], "more predicted masks"),
        ([np.full((2, 2), 7, dtype=np.uint8)], [np.zeros((2, 2), dtype=np.uint8)], "outside 0..3"),
        ([np.zeros((2, 2), dtype=np.uint8)], [np.full((2, 2), 4, dtype=np.uint8)], "outside 0..3"),
    ],
)
def test_evaluate_masks_rejects_mismatches(truths, predictions, message):
    with pytest.raises(InvalidInputError, match=message):
        evaluate_masks(truths, predictions, CLASSES)


PROBABILITIES = np.array([
    [[0.7, 0.4, 0.2]],   # ok
    [[0.2, 0.3, 0.5]],   # scratch
    [[0.1, 0.3, 0.3]],   # spot
], dtype=np.float32)


def test_to_class_map_takes_most_probable_class():
    assert to_class_map(PROBABILITIES).tolist() == [[0, 0, 1]]


def test_to_class_map_minimum_defect_probability():
    # Pixel 1: p(ok) 0.4, so its defect probability 0.6 reaches 0.5; scratch and spot tie, the first wins.
    assert to_class_map(PROBABILITIES, min_defect_probability=0.5).tolist() == [[0, 1, 1]]
    assert to_class_map(PROBABILITIES, min_defect_probability=0.25).tolist() == [[1, 1, 1]]
    assert to_class_map(PROBABILITIES, min_defect_probability=0.7).tolist() == [[0, 0, 1]]


@pytest.mark.parametrize("minimum", [0.0, 1.0, 1.5])
def test_to_class_map_rejects_minimum_outside_open_interval(minimum):
    with pytest.raises(InvalidInputError, match="minimum defect probability"):
        to_class_map(PROBABILITIES, min_defect_probability=minimum)


def test_to_class_map_rejects_two_dimensional_input():
    with pytest.raises(InvalidInputError, match=r"expected \(C, H, W\)"):
        to_class_map(PROBABILITIES[0])


def test_to_class_map_one_class_per_region():
    # Two regions: the left one splits between scratch and spot, the right one is a lone spot pixel.
    probabilities = np.zeros((3, 2, 5), dtype=np.float32)
    probabilities[0] = 1.0
    probabilities[:, 0, 0] = [0.1, 0.6, 0.3]
    probabilities[:, 0, 1] = [0.1, 0.5, 0.4]
    probabilities[:, 1, 1] = [0.2, 0.3, 0.5]
    probabilities[:, 1, 4] = [0.3, 0.2, 0.5]

    plain = to_class_map(probabilities)
    voted = to_class_map(probabilities, one_class_per_region=True)

    assert plain.tolist() == [[1, 1, 0, 0, 0], [0, 2, 0, 0, 2]]
    # Left region: scratch 0.6 + 0.5 + 0.3 = 1.4 against spot 0.3 + 0.4 + 0.5 = 1.2.
    assert voted.tolist() == [[1, 1, 0, 0, 0], [0, 1, 0, 0, 2]]


def test_to_class_map_regions_join_diagonally():
    probabilities = np.zeros((3, 2, 2), dtype=np.float32)
    probabilities[0] = 1.0
    probabilities[:, 0, 0] = [0.0, 0.9, 0.1]
    probabilities[:, 1, 1] = [0.0, 0.4, 0.6]

    voted = to_class_map(probabilities, one_class_per_region=True)

    assert voted.tolist() == [[1, 0], [0, 1]]
