"""Classification training on generated images: accuracy, determinism and serialization."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from defectlab.errors import InvalidInputError, TrainingError
from defectlab.training.autotune import Augmentations, TrainingPlan
from defectlab.training.classifier import ClassifierModel, train_classifier

CLASS_NAMES = ["ok", "spot", "scratch"]


def _image(rng: np.random.Generator, label: int) -> np.ndarray:
    """64 x 64 grey noise; class 1 adds a bright square, class 2 a dark horizontal scratch."""
    pixels = rng.normal(110, 10, size=(64, 64))
    row, column = rng.integers(8, 48, size=2)
    if label == 1:
        pixels[row : row + 10, column : column + 10] = 240
    elif label == 2:
        pixels[row : row + 3, 4:60] = 10
    return pixels.clip(0, 255).astype(np.uint8)


def _dataset(seed: int, per_class: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), per_class)
    return [_image(rng, int(label)) for label in labels], labels


def _plan(**changes) -> TrainingPlan:
    settings = {
        "task": "classification",
        "input_size": (64, 64),
        "augmentations": Augmentations(rotate_90=True),
        "epochs": 4,
        "batch_size": 16,
        "learning_rate": 3e-4,
        "class_weights": {"ok": 1.0, "spot": 1.0, "scratch": 1.0},
        "seed": 0,
    }
    settings.update(changes)
    return TrainingPlan(**settings)


@pytest.fixture(scope="module")
def trained():
    images, labels = _dataset(0, 16)
    dev_images, dev_labels = _dataset(1, 6)
    model = train_classifier(images, labels, CLASS_NAMES, _plan(), dev_images=dev_images, dev_labels=dev_labels)
    return model


def test_classifier_separates_generated_classes(trained):
    images, labels = _dataset(2, 10)

    probabilities = trained.predict_proba(images)
    predicted = trained.predict(images)

    assert probabilities.shape == (30, 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(probabilities.argmax(axis=1) == labels) >= 0.9
    assert sum(p == "ok" for p, label in zip(predicted, labels) if label != 0) == 0  # no escapes


def test_threshold_and_history_recorded(trained):
    assert 0.05 <= trained.threshold <= 0.5
    assert trained.head in ("linear", "fine_tuned")
    assert len(trained.loss_history) == 4
    assert {"epoch", "train_loss", "dev_loss", "dev_accuracy"} <= set(trained.loss_history[0])


def test_round_trip_gives_identical_probabilities(trained):
    images, _ = _dataset(3, 3)
    stream = io.BytesIO()
    torch.save(trained.to_dict(), stream)
    stream.seek(0)

    restored = ClassifierModel.from_dict(torch.load(stream, weights_only=True))

    assert np.array_equal(trained.predict_proba(images), restored.predict_proba(images))
    assert restored.threshold == trained.threshold
    assert restored.class_names == CLASS_NAMES


@pytest.mark.slow
def test_training_is_deterministic():
    images, labels = _dataset(4, 6)
    plan = _plan(epochs=2, fine_tune="always")

    first = train_classifier(images, labels, CLASS_NAMES, plan)
    second = train_classifier(images, labels, CLASS_NAMES, plan)

    assert np.array_equal(first.predict_proba(images[:4]), second.predict_proba(images[:4]))


def test_fine_tune_never_keeps_linear_head():
    images, labels = _dataset(5, 5)

    model = train_classifier(images, labels, CLASS_NAMES, _plan(fine_tune="never"))

    assert model.head == "linear"
    assert model.loss_history == []


def test_single_class_rejected():
    images, _ = _dataset(6, 2)

    with pytest.raises(TrainingError, match="at least two"):
        train_classifier(images, np.zeros(len(images), dtype=int), CLASS_NAMES, _plan())


@pytest.mark.parametrize(
    ("labels", "message"),
    [([0, 1], "2 entries for 6 images"), ([0, 1, 2, 3, 0, 1], r"labels \[3\] are invalid")],
)
def test_invalid_labels_rejected(labels, message):
    images, _ = _dataset(7, 2)

    with pytest.raises(InvalidInputError, match=message):
        train_classifier(images, labels, CLASS_NAMES, _plan())
