"""Loss curves: epoch entries turned into curves, and each trainer reporting every epoch as it ends."""

from __future__ import annotations

import math

import numpy as np
import pytest

from defectlab.samples import draw_part
from defectlab.training.autotune import Augmentations, TrainingPlan
from defectlab.training.classifier import train_classifier
from defectlab.training.curves import append_epoch, curves_from_history, standard_curves
from defectlab.training.detection import train_detector
from defectlab.training.segmentation import train_segmenter

CLASSES = ["ok", "scratch", "spot"]


def test_curves_from_history_keeps_losses_only() -> None:
    history = [{"epoch": 1, "train_loss": 0.912345, "dev_loss": 1.0, "dev_accuracy": 0.5},
               {"epoch": 2, "train_loss": 0.5, "dev_loss": math.nan, "dev_accuracy": 0.75}]

    curves = curves_from_history(history)

    assert curves == {"train": [0.9123, 0.5], "dev": [1.0, None]}


def test_append_epoch_extends_curves() -> None:
    curves = {"background": [0.3]}

    append_epoch(curves, {"epoch": 2, "background_loss": 0.25, "projection_loss": 0.125})

    assert curves == {"background": [0.3, 0.25], "projection": [0.125]}


def test_standard_curves_names_and_drops() -> None:
    stored = {"train": [0.5, 0.4], "dev": [math.nan, math.nan], "train_loss": [2.0], "dev_accuracy": [0.9]}

    curves = standard_curves(stored)

    assert curves == {"train": [2.0]}
    assert standard_curves(None) == {}


def _scenes(count: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """Return generated 64 x 64 parts cycling good, scratch and spot, with their class maps and labels."""
    rng = np.random.default_rng(seed)
    images, maps, labels = [], [], []
    for index in range(count):
        label = index % 3
        pixels, defect = draw_part(rng, size=64, defect=None if label == 0 else CLASSES[label])
        images.append(pixels)
        maps.append((defect * label).astype(np.uint8))
        labels.append(label)
    return images, maps, labels


def _box(mask: np.ndarray, label: int) -> list[tuple[int, float, float, float, float]]:
    if label == 0:
        return []
    rows, columns = np.nonzero(mask)
    return [(label, float(columns.min()), float(rows.min()), float(columns.max() + 1), float(rows.max() + 1))]


@pytest.mark.parametrize("trainer", ["classifier", "segmenter", "detector"])
def test_trainer_reports_each_epoch(trainer: str) -> None:
    images, maps, labels = _scenes(9, seed=0)
    reported: list[dict[str, float]] = []

    if trainer == "classifier":
        plan = TrainingPlan(task="classification", input_size=(64, 64), augmentations=Augmentations(), epochs=3,
                            batch_size=8, fine_tune="always", class_weights={name: 1.0 for name in CLASSES})
        dev_images, _, dev_labels = _scenes(6, seed=1)
        model = train_classifier(images, labels, CLASSES, plan, dev_images=dev_images, dev_labels=dev_labels,
                                 on_epoch=lambda entry: reported.append(dict(entry)))
    elif trainer == "segmenter":
        model = train_segmenter(images, maps, CLASSES, input_size=(64, 64), epochs=3,
                                on_epoch=lambda entry: reported.append(dict(entry)))
    else:
        boxes = [_box(mask, label) for mask, label in zip(maps, labels)]
        model = train_detector(images, boxes, CLASSES, input_size=(64, 64), epochs=3,
                               on_epoch=lambda entry: reported.append(dict(entry)))

    assert [entry["epoch"] for entry in reported] == [1, 2, 3]
    assert reported == model.loss_history
