"""Auto-tuner: input size, augmentations, overrides and data warnings."""

from __future__ import annotations

import pytest

from defectlab.errors import InvalidInputError
from defectlab.training.autotune import SETTING_RANGES, ImageStats, TrainingPlan, plan_training


def _images(count: int, label: str, *, width: int = 300, height: int = 320, split: str = "train") -> list[ImageStats]:
    return [ImageStats(width=width, height=height, label=label, split=split) for _ in range(count)]


def test_near_square_images_get_square_input():
    plan = plan_training(_images(50, "ok") + _images(50, "crack"), "classification")

    assert plan.input_size == (160, 160)
    assert any("160 x 160" in reason for reason in plan.reasons)


def test_near_square_anomaly_input_stays_224():
    plan = plan_training(_images(50, "ok"), "anomaly")

    assert plan.input_size == (224, 224)


def test_tall_images_keep_aspect_ratio():
    plan = plan_training(_images(100, "ok", width=500, height=1260), "anomaly")

    height, width = plan.input_size
    assert height > 2 * width
    assert height % 32 == 0
    assert width % 32 == 0
    assert width >= 224


def test_few_defect_examples_warned():
    plan = plan_training(_images(200, "ok") + _images(3, "defective"), "classification")

    assert any("'defective' has only 3" in warning for warning in plan.warnings)
    assert any("imbalanced" in warning for warning in plan.warnings)


def test_rare_class_weighs_more():
    plan = plan_training(_images(200, "ok") + _images(20, "crack"), "classification")

    assert plan.class_weights["crack"] == pytest.approx(5.5)
    assert plan.class_weights["ok"] == pytest.approx(0.55)


def test_classification_augmentations_are_safe():
    plan = plan_training(_images(50, "ok") + _images(50, "crack"), "classification")

    augmentations = plan.augmentations
    assert augmentations.horizontal_flip
    assert augmentations.rotate_90  # square input
    assert 0 < augmentations.brightness <= SETTING_RANGES["brightness"][1] <= 0.1
    assert 0 < augmentations.contrast <= SETTING_RANGES["contrast"][1] <= 0.1


def test_anomaly_has_no_augmentation():
    plan = plan_training(_images(50, "ok"), "anomaly")

    assert not plan.augmentations.horizontal_flip
    assert plan.augmentations.brightness == 0.0


def test_anomaly_warns_without_defective_dev_images():
    plan = plan_training(_images(50, "ok"), "anomaly")

    assert any("No defective dev images" in warning for warning in plan.warnings)


def test_override_applied_with_reason():
    plan = plan_training(_images(50, "ok") + _images(50, "crack"), "classification", {"epochs": 5, "seed": 7})

    assert plan.epochs == 5
    assert plan.seed == 7
    assert any("'epochs' is 5" in reason for reason in plan.reasons)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": 500}, r"'epochs' is 500, outside its safe range 1 to 100"),
        ({"brightness": 0.5}, r"'brightness' is 0.5, outside its safe range 0 to 0.1"),
        ({"input_height": 16}, r"'input_height' is 16, outside its safe range 64 to 1024"),
        ({"epochs": 2.5}, r"use a whole number in the range 1 to 100"),
        ({"fine_tune": "maybe"}, r"allowed values: auto, always, never$"),
        ({"stretch": "sometimes"}, r"'stretch' is 'sometimes'.*allowed values: auto, always, never$"),
        ({"horizontal_flip": "yes"}, r"use true or false"),
        ({"dropout": 0.1}, r"'dropout' is unknown"),
        ({"rotate_90": True, "input_width": 320}, r"not square"),
    ],
)
def test_invalid_override_rejected(overrides, message):
    with pytest.raises(InvalidInputError, match=message):
        plan_training(_images(50, "ok") + _images(50, "crack"), "classification", overrides)


@pytest.mark.parametrize(("task", "overrides", "name"), [
    ("classification", {"memory_bank_size": 1000}, "memory_bank_size"),
    ("classification", {"calibration_fraction": 0.2}, "calibration_fraction"),
    ("anomaly", {"epochs": 5}, "epochs"),
    ("anomaly", {"horizontal_flip": True}, "horizontal_flip"),
])
def test_setting_unused_by_task_rejected(task, overrides, name):
    with pytest.raises(InvalidInputError, match=f"'{name}' is not used by {task} models"):
        plan_training(_images(50, "ok") + _images(50, "crack"), task, overrides)


def test_shared_settings_accepted_by_both_tasks():
    for task in ("classification", "anomaly"):
        plan = plan_training(_images(50, "ok") + _images(50, "crack"), task, {"seed": 3, "escape_cost": 8.0})
        assert (plan.seed, plan.escape_cost) == (3, 8.0)


def test_unknown_task_rejected():
    with pytest.raises(InvalidInputError, match="task 'segment'"):
        plan_training(_images(5, "ok"), "segment")


def test_only_test_images_rejected():
    with pytest.raises(InvalidInputError, match="test split"):
        plan_training(_images(5, "ok", split="test"), "anomaly")


def test_plan_dict_round_trip():
    plan = plan_training(_images(50, "ok") + _images(5, "crack"), "classification", {"learning_rate": 0.002})

    assert TrainingPlan.from_dict(plan.to_dict()) == plan


def test_small_images_said_to_be_enlarged():
    small = plan_training(_images(30, "ok", width=64, height=64) + _images(30, "crack", width=64, height=64),
                          "classification")
    large = plan_training(_images(30, "ok") + _images(30, "crack"), "classification")

    assert any("are enlarged to the default square input of 160 x 160 px" in reason for reason in small.reasons)
    assert not any("enlarged" in reason for reason in large.reasons)
    assert any("keeps defects of a few pixels visible" in reason for reason in large.reasons)
