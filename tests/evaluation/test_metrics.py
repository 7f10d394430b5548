"""Hand-computed checks of evaluate_predictions and curves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from defectlab.errors import InvalidInputError
from defectlab.evaluation.metrics import Evaluation, curves, evaluate_predictions

CLASSES = ["ok", "scratch", "dent"]

# Ten images: four defective and six good. Image 1 is an escape, images 5 and 6
# are overkills, and image 2 is a dent rejected as a scratch.
TRUE = ["scratch", "scratch", "dent", "dent", "ok", "ok", "ok", "ok", "ok", "ok"]
PRED = ["scratch", "ok", "scratch", "dent", "ok", "scratch", "dent", "ok", "ok", "ok"]
SCORES = np.array([0.9, 0.3, 0.8, 0.95, 0.1, 0.7, 0.6, 0.2, 0.4, 0.05])


def evaluate_ten(**overrides) -> Evaluation:
    arguments = {
        "class_names": CLASSES,
        "true_labels": TRUE,
        "pred_labels": PRED,
        "scores": SCORES,
        "threshold": 0.5,
    }
    arguments.update(overrides)
    return evaluate_predictions(**arguments)


def by_name(evaluation: Evaluation, name: str):
    return next(row for row in evaluation.per_class if row.name == name)


def test_counts_escapes_and_overkills():
    evaluation = evaluate_ten()

    assert evaluation.images == 10
    assert evaluation.defective == 4
    assert evaluation.good == 6
    assert evaluation.escapes == 1
    assert evaluation.escape_rate == pytest.approx(0.25)
    assert evaluation.overkills == 2
    assert evaluation.overkill_rate == pytest.approx(1 / 3)
    assert evaluation.wrong_class == 1
    assert evaluation.accuracy == pytest.approx(0.6)
    assert evaluation.threshold == 0.5
    assert evaluation.undefined == {}


def test_confusion_matrix_rows_true_columns_predicted():
    evaluation = evaluate_ten()

    assert evaluation.class_names == CLASSES
    assert evaluation.confusion_matrix == [
        [4, 1, 1],
        [1, 1, 0],
        [0, 1, 1],
    ]


def test_per_class_precision_recall_f1():
    evaluation = evaluate_ten()
    ok, scratch, dent = (by_name(evaluation, name) for name in CLASSES)

    assert (ok.support, ok.predicted) == (6, 5)
    assert ok.precision == pytest.approx(4 / 5)
    assert ok.recall == pytest.approx(4 / 6)
    assert ok.f1 == pytest.approx(8 / 11)
    assert (scratch.support, scratch.predicted) == (2, 3)
    assert scratch.precision == pytest.approx(1 / 3)
    assert scratch.recall == pytest.approx(1 / 2)
    assert scratch.f1 == pytest.approx(2 / 5)
    assert (dent.support, dent.predicted) == (2, 2)
    assert dent.precision == pytest.approx(1 / 2)
    assert dent.recall == pytest.approx(1 / 2)
    assert dent.f1 == pytest.approx(1 / 2)
    assert dent.auroc is None


def test_auroc_and_average_precision_by_hand():
    evaluation = evaluate_ten()

    # Of the 4 x 6 defective-good pairs, only the escape (0.3) ranks below
    # three good images (0.7, 0.6, 0.4): 21 of 24 pairs are in order.
    assert evaluation.auroc == pytest.approx(21 / 24)
    # Ranked by score the defective images sit at ranks 1, 2, 3 and 7.
    assert evaluation.average_precision == pytest.approx((1 + 1 + 1 + 4 / 7) / 4)


def test_error_indices_worst_first():
    evaluation = evaluate_ten()

    assert evaluation.error_indices == [1, 5, 6, 2]


def test_escapes_lowest_score_first():
    true = ["dent", "dent", "dent", "ok"]
    pred = ["ok", "ok", "ok", "dent"]
    scores = np.array([0.4, 0.1, 0.3, 0.9])

    evaluation = evaluate_predictions(
        class_names=["ok", "dent"], true_labels=true, pred_labels=pred, scores=scores, threshold=0.5
    )

    assert evaluation.error_indices == [1, 2, 0, 3]


def test_wrong_class_ordered_by_probability_margin():
    true = ["scratch", "dent", "ok"]
    pred = ["dent", "scratch", "ok"]
    probabilities = np.array(
        [
            [0.1, 0.4, 0.5],  # margin dent over scratch: 0.1
            [0.0, 0.9, 0.1],  # margin scratch over dent: 0.8
            [0.9, 0.05, 0.05],
        ]
    )

    evaluation = evaluate_predictions(
        class_names=CLASSES,
        true_labels=true,
        pred_labels=pred,
        scores=1 - probabilities[:, 0],
        threshold=0.5,
        probabilities=probabilities,
    )

    assert evaluation.error_indices == [1, 0]


def test_per_class_auroc_by_hand():
    true = ["ok", "ok", "scratch", "scratch"]
    pred = ["ok", "ok", "ok", "scratch"]
    scratch_probability = np.array([0.1, 0.4, 0.35, 0.8])
    probabilities = np.stack([1 - scratch_probability, scratch_probability], axis=1)

    evaluation = evaluate_predictions(
        class_names=["ok", "scratch"],
        true_labels=true,
        pred_labels=pred,
        scores=scratch_probability,
        threshold=0.5,
        probabilities=probabilities,
    )

    # Scratch 0.35 beats ok 0.1 but not ok 0.4; scratch 0.8 beats both: 3 of 4 pairs.
    assert by_name(evaluation, "scratch").auroc == pytest.approx(3 / 4)
    assert by_name(evaluation, "ok").auroc == pytest.approx(3 / 4)
    assert evaluation.auroc == pytest.approx(3 / 4)


def test_class_without_examples_is_none():
    evaluation = evaluate_predictions(
        class_names=["ok", "scratch", "dent"],
        true_labels=["ok", "scratch", "ok"],
        pred_labels=["ok", "scratch", "ok"],
        scores=np.array([0.1, 0.9, 0.2]),
        threshold=0.5,
        probabilities=np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.8, 0.1, 0.1]]),
    )
    dent = by_name(evaluation, "dent")

    assert dent.support == 0
    assert dent.predicted == 0
    assert dent.recall is None
    assert dent.precision is None
    assert dent.f1 is None
    assert dent.auroc is None
    assert evaluation.confusion_matrix[2] == [0, 0, 0]


def test_class_predicted_but_absent():
    evaluation = evaluate_predictions(
        class_names=["ok", "dent"],
        true_labels=["ok", "ok", "ok"],
        pred_labels=["ok", "dent", "ok"],
        scores=np.array([0.1, 0.9, 0.2]),
        threshold=0.5,
    )
    dent = by_name(evaluation, "dent")

    assert dent.support == 0
    assert dent.recall is None
    assert dent.precision == 0.0
    assert dent.f1 == 0.0


def test_only_good_images():
    evaluation = evaluate_predictions(
        class_names=["ok", "dent"],
        true_labels=["ok", "ok", "ok", "ok"],
        pred_labels=["ok", "dent", "ok", "ok"],
        scores=np.array([0.1, 0.9, 0.2, 0.3]),
        threshold=0.5,
    )

    assert evaluation.defective == 0
    assert evaluation.escapes == 0
    assert evaluation.escape_rate is None
    assert "no defective images" in evaluation.undefined["escape_rate"]
    assert evaluation.overkill_rate == pytest.approx(0.25)
    assert evaluation.auroc is None
    assert "no defective images" in evaluation.undefined["auroc"]
    assert evaluation.average_precision is None
    assert "average_precision" in evaluation.undefined
    assert evaluation.error_indices == [1]


def test_only_defective_images():
    evaluation = evaluate_predictions(
        class_names=["ok", "dent"],
        true_labels=["dent", "dent"],
        pred_labels=["dent", "ok"],
        scores=np.array([0.9, 0.2]),
        threshold=0.5,
    )

    assert evaluation.escape_rate == pytest.approx(0.5)
    assert evaluation.overkill_rate is None
    assert "no good images" in evaluation.undefined["overkill_rate"]
    assert evaluation.auroc is None
    assert "no good images" in evaluation.undefined["auroc"]


def test_single_class_project():
    evaluation = evaluate_predictions(
        class_names=["ok"],
        true_labels=["ok", "ok"],
        pred_labels=["ok", "ok"],
        scores=np.array([0.1, 0.2]),
        threshold=0.5,
    )

    assert evaluation.confusion_matrix == [[2]]
    assert evaluation.accuracy == 1.0
    assert evaluation.overkill_rate == 0.0
    assert evaluation.escape_rate is None
    assert evaluation.per_class[0].recall == 1.0
    assert evaluation.error_indices == []


def test_to_dict_is_json_ready():
    evaluation = evaluate_ten(probabilities=np.full((10, 3), 1 / 3))

    data = evaluation.to_dict()
    restored = json.loads(json.dumps(data))

    assert restored == data
    assert data["escape_rate"] == pytest.approx(0.25)
    assert data["per_class"][1]["name"] == "scratch"
    assert type(data["confusion_matrix"][0][0]) is int
    assert type(data["auroc"]) is float
    assert all(type(index) is int for index in data["error_indices"])


def test_curves_end_points():
    result = curves(np.array(TRUE) != "ok", SCORES)

    assert result.precision[-1] == 1.0
    assert result.recall[-1] == 0.0
    assert result.recall[0] == 1.0
    assert result.precision.shape == (result.pr_thresholds.size + 1,)
    assert result.false_positive_rate[-1] == 1.0
    assert result.true_positive_rate[-1] == 1.0
    assert np.isinf(result.roc_thresholds[0])


def test_curves_reject_one_kind():
    with pytest.raises(InvalidInputError, match="both good and defective"):
        curves(np.array([False, False]), np.array([0.1, 0.2]))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"true_labels": TRUE[:9]}, "pred_labels has 10 entries but true_labels has 9"),
        ({"true_labels": ["scrach"] + TRUE[1:]}, r"true_labels\[0\]='scrach'"),
        ({"pred_labels": PRED[:3] + ["bent"] + PRED[4:]}, r"pred_labels\[3\]='bent'"),
        ({"ok_class": "good"}, "ok_class 'good' is not in class_names"),
        ({"class_names": ["ok", "dent", "dent"]}, "unique names"),
        ({"class_names": []}, "non-empty"),
        ({"true_labels": [], "pred_labels": []}, "true_labels is empty"),
        ({"scores": SCORES[:9]}, r"scores must have shape \(10,\)"),
        ({"scores": np.where(SCORES > 0.9, np.nan, SCORES)}, r"scores\[3\]=nan"),
        ({"threshold": float("inf")}, "threshold must be a finite number"),
        ({"probabilities": np.ones((10, 2))}, r"probabilities must have shape \(10, 3\)"),
        ({"probabilities": np.full((10, 3), np.nan)}, "probabilities must be finite"),
    ],
)
def test_invalid_input_raises(overrides, message):
    with pytest.raises(InvalidInputError, match=message):
        evaluate_ten(**overrides)


def test_many_unknown_labels_are_counted():
    with pytest.raises(InvalidInputError, match="and 5 more"):
        evaluate_ten(true_labels=["bad"] * 10)
