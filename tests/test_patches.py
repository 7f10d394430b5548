"""Patch classifier: small defects found, saved and restored exactly."""

from __future__ import annotations

import numpy as np
import pytest

from defectlab.errors import InvalidInputError, TrainingError
from defectlab.samples import draw_part
from defectlab.training.autotune import ImageStats, plan_training
from defectlab.training.patches import HEADS, PatchClassifier, train_patch_classifier

CLASSES = ["ok", "scratch", "spot"]


def dataset(count: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for index in range(count):
        label = index % 3
        pixels, _ = draw_part(rng, size=96, defect=None if label == 0 else CLASSES[label])
        images.append(pixels)
        labels.append(label)
    return images, np.array(labels)


@pytest.fixture(scope="module")
def trained() -> tuple[PatchClassifier, list[np.ndarray], np.ndarray]:
    images, labels = dataset(36, seed=1)
    dev_images, dev_labels = dataset(12, seed=2)
    stats = [ImageStats(96, 96, label=CLASSES[label], split="train") for label in labels]
    plan = plan_training(stats, "classification", {"input_height": 96, "input_width": 96})
    model = train_patch_classifier(images, labels, CLASSES, plan, dev_images=dev_images, dev_labels=dev_labels)
    test_images, test_labels = dataset(15, seed=3)
    return model, test_images, test_labels


def test_patch_classifier_separates_classes(trained) -> None:
    model, images, labels = trained
    probabilities = model.predict_proba(images)
    assert probabilities.shape == (15, 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(probabilities.argmax(axis=1) == labels) >= 0.9


def test_defect_scores_rank_defects_first(trained) -> None:
    model, images, labels = trained
    scores = model.defect_scores(model.predict_proba(images))
    assert scores[labels != 0].min() > scores[labels == 0].max()


def test_round_trip_gives_identical_probabilities(trained) -> None:
    model, images, _ = trained
    restored = PatchClassifier.from_dict(model.to_dict())
    assert np.array_equal(restored.predict_proba(images), model.predict_proba(images))
    assert restored.threshold == model.threshold
    assert len(restored.loss_history) == len(model.loss_history)


def test_foreign_dict_rejected() -> None:
    with pytest.raises(InvalidInputError, match="PatchClassifier.to_dict"):
        PatchClassifier.from_dict({"format": "something else"})


def test_training_needs_dev_images() -> None:
    images, labels = dataset(6, seed=4)
    stats = [ImageStats(96, 96, label=CLASSES[label], split="train") for label in labels]
    plan = plan_training(stats, "classification")
    with pytest.raises(TrainingError, match="dev image"):
        train_patch_classifier(images, labels, CLASSES, plan, dev_images=[], dev_labels=[])


def test_predictor_same_score_for_every_form(trained) -> None:
    import base64
    import io

    from PIL import Image

    from defectlab.models.artifact import new_artifact
    from defectlab.prediction.predictor import Predictor

    model, images, _ = trained
    artifact = new_artifact(task="classification", class_names=CLASSES, threshold=model.threshold,
                            preprocessing=model.preprocessing.to_dict(), state={"kind": "patches", **model.to_dict()},
                            settings={})
    predictor = Predictor.from_artifact(artifact)
    stream = io.BytesIO()
    Image.fromarray(images[1]).save(stream, format="PNG")
    forms = [images[1], Image.fromarray(images[1]), stream.getvalue(), base64.b64encode(stream.getvalue()).decode()]
    predictions = predictor.predict_sources(forms)
    assert len({p.label for p in predictions}) == 1
    for prediction in predictions[1:]:
        assert prediction.score == pytest.approx(predictions[0].score, abs=1e-6)


def test_trained_model_averages_flipped_copies(trained) -> None:
    model, _, _ = trained
    assert model.test_time_copies == ("identity", "horizontal_flip", "vertical_flip", "rotate_180")


def test_saved_model_without_copies_uses_identity(trained) -> None:
    model, images, _ = trained
    saved = model.to_dict()
    del saved["test_time_copies"]
    restored = PatchClassifier.from_dict(saved)
    assert restored.test_time_copies == ("identity",)
    assert restored.predict_proba(images).shape == (15, 3)


def test_unknown_test_time_copy_rejected(trained) -> None:
    model, _, _ = trained
    saved = model.to_dict()
    saved["test_time_copies"] = ["rotate_45"]
    with pytest.raises(InvalidInputError, match="rotate_45"):
        PatchClassifier.from_dict(saved)


def _one_head(saved: dict, member: int) -> PatchClassifier:
    """Return the saved model with only head ``member``, in the version 1 layout of a single head."""
    single = {key: value for key, value in saved.items() if key != "heads"}
    return PatchClassifier.from_dict({**single, "version": 1, "head": saved["heads"][member]})


def test_prediction_is_mean_of_the_heads(trained) -> None:
    model, images, _ = trained
    saved = model.to_dict()
    assert len(saved["heads"]) == HEADS == 3

    members = [_one_head(saved, member).predict_proba(images) for member in range(HEADS)]

    assert np.allclose(model.predict_proba(images), np.mean(members, axis=0), atol=1e-6)
    # Each head has its own random start, so the heads differ.
    assert not np.allclose(members[0], members[1], atol=1e-3)


def test_version_1_model_keeps_its_one_head(trained) -> None:
    model, images, _ = trained
    restored = _one_head(model.to_dict(), 0)

    assert restored.to_dict()["version"] == 2
    assert len(restored.to_dict()["heads"]) == 1
    assert np.array_equal(PatchClassifier.from_dict(restored.to_dict()).predict_proba(images),
                          restored.predict_proba(images))
