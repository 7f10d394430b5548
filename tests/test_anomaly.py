"""Anomaly detection: scores, heatmaps, threshold and serialization, on generated images."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from defectlab.errors import InvalidInputError, TrainingError
from defectlab.training.anomaly import (
    AnomalyModel,
    choose_threshold,
    fit_position_stats,
    greedy_coreset,
    nearest_distances,
    train_anomaly_detector,
)
from defectlab.training.autotune import TrainingPlan

SQUARE = (slice(30, 42), slice(44, 56))  # rows, columns of the bright defect


def _good(rng: np.random.Generator, shape: tuple[int, int] = (72, 88)) -> np.ndarray:
    """A grey surface with fine vertical streaks and noise, uint8."""
    columns = 100 + 20 * np.sin(np.arange(shape[1]) / 3.0)
    pixels = columns[None, :] + rng.normal(0, 6, size=shape)
    return pixels.clip(0, 255).astype(np.uint8)


def _defective(rng: np.random.Generator) -> np.ndarray:
    pixels = _good(rng)
    pixels[SQUARE] = 230
    return pixels


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    plan = TrainingPlan(task="anomaly", input_size=(64, 64), memory_bank_size=600, seed=0)
    calibration = [_good(rng) for _ in range(6)]
    model = train_anomaly_detector([_good(rng) for _ in range(24)], plan, calibration_images=calibration)
    return model, calibration, rng


def test_defective_images_score_higher(trained):
    model, _, rng = trained
    good = model.predict([_good(rng) for _ in range(6)], heatmaps=False)
    defective = model.predict([_defective(rng) for _ in range(6)], heatmaps=False)

    assert defective.scores.min() > good.scores.max()
    assert defective.is_defect.all()


def test_scores_are_in_unit_range(trained):
    model, _, rng = trained
    result = model.predict([_good(rng), _defective(rng)])

    assert result.scores.dtype == np.float32
    assert ((result.scores >= 0) & (result.scores <= 1)).all()
    assert all(((heatmap >= 0) & (heatmap <= 1)).all() for heatmap in result.heatmaps)


def test_heatmap_has_image_size_and_peaks_on_defect(trained):
    model, _, rng = trained
    image = _defective(rng)

    heatmap = model.predict([image]).heatmaps[0]
    # The mapped heatmap saturates at 1 around a strong defect, so the peak is
    # located on the raw patch distances, which the heatmap maps monotonically.
    patch_map = model.compute_patch_scores([image])[0]
    row, column = np.unravel_index(int(patch_map.argmax()), tuple(patch_map.shape))
    scale_rows, scale_columns = image.shape[0] / patch_map.shape[0], image.shape[1] / patch_map.shape[1]

    assert heatmap.shape == image.shape
    assert heatmap.dtype == np.float32
    assert SQUARE[0].start - scale_rows <= (row + 0.5) * scale_rows <= SQUARE[0].stop + scale_rows
    assert SQUARE[1].start - scale_columns <= (column + 0.5) * scale_columns <= SQUARE[1].stop + scale_columns
    assert heatmap[SQUARE].mean() >= heatmap.mean()


def test_threshold_passes_calibration_good_images(trained):
    model, calibration, _ = trained

    result = model.predict(calibration, heatmaps=False)

    assert not result.is_defect.any()
    assert model.good_median < model.threshold


def test_round_trip_gives_identical_scores(trained):
    model, _, rng = trained
    images = [_good(rng), _defective(rng)]
    stream = io.BytesIO()
    torch.save(model.to_dict(), stream)
    stream.seek(0)

    restored = AnomalyModel.from_dict(torch.load(stream, weights_only=True))

    original, again = model.predict(images), restored.predict(images)
    assert np.array_equal(original.scores, again.scores)
    assert all(np.array_equal(a, b) for a, b in zip(original.heatmaps, again.heatmaps))


def test_training_is_deterministic():
    rng = np.random.default_rng(3)
    images = [_good(rng) for _ in range(8)]
    plan = TrainingPlan(task="anomaly", input_size=(64, 64), memory_bank_size=200, seed=5)

    first = train_anomaly_detector(images, plan)
    second = train_anomaly_detector(images, plan)

    assert torch.equal(first.memory_bank, second.memory_bank)
    assert first.threshold == second.threshold


def test_too_few_images_rejected():
    plan = TrainingPlan(task="anomaly", input_size=(64, 64))

    with pytest.raises(TrainingError, match="at least 2 good images"):
        train_anomaly_detector([_good(np.random.default_rng(0))], plan)


def test_wrong_calibration_labels_rejected():
    rng = np.random.default_rng(0)
    plan = TrainingPlan(task="anomaly", input_size=(64, 64))

    with pytest.raises(InvalidInputError, match="calibration labels"):
        train_anomaly_detector([_good(rng)] * 3, plan, calibration_images=[_good(rng)] * 2, calibration_labels=[0, 2])


def test_foreign_saved_model_rejected(trained):
    data = trained[0].to_dict()
    data["format"] = "something-else"

    with pytest.raises(InvalidInputError, match="expected 'defectlab.anomaly.patchcore'"):
        AnomalyModel.from_dict(data)


def test_patch_scores_use_position_stats(trained):
    model, _, rng = trained
    image = _good(rng)

    distances = model.compute_patch_distances([image])[0]
    scores = model.compute_patch_scores([image])[0]

    assert model.position_mean.shape == distances.shape
    assert torch.allclose(scores, (distances - model.position_mean) / model.position_std)


def test_version_1_model_scores_distances(trained):
    data = trained[0].to_dict()
    data["version"] = 1
    del data["position_mean"], data["position_std"]
    image = _good(trained[2])

    restored = AnomalyModel.from_dict(data)

    assert restored.position_mean is None
    assert torch.equal(restored.compute_patch_scores([image])[0], restored.compute_patch_distances([image])[0])


def test_position_stats_shrink_toward_all_positions():
    # Two images whose left column is always 4 and right column always 0:
    # per position the variance is 0, over all positions the mean is 2 and the variance 4.
    maps = [torch.tensor([[4.0, 0.0], [4.0, 0.0]])] * 2

    mean, std = fit_position_stats(maps)

    weight = 2 / (2 + 8)  # two images against a prior of 8 images
    assert torch.allclose(mean[:, 0], torch.tensor(weight * 4 + (1 - weight) * 2))
    assert torch.allclose(mean[:, 1], torch.tensor((1 - weight) * 2))
    assert torch.allclose(std, torch.full((2, 2), ((1 - weight) * 4) ** 0.5))


def test_position_stats_without_maps_rejected():
    with pytest.raises(TrainingError, match="no good calibration image"):
        fit_position_stats([])


@pytest.mark.parametrize(
    ("good", "defective", "expected"),
    [
        ([1.0, 2.0, 3.0], None, 3.1),  # max + 10 % of (max - median)
        ([1.0, 2.0, 3.0], [4.0, 5.0], 3.5),  # midpoint of the gap
        ([1.0, 2.0, 6.0], [3.0, 5.0], 2.5),  # one overkill (6) costs less than an escape
        ([5.0, 6.0], [1.0], 6.05),  # an escape cannot be avoided without rejecting every good image
    ],
)
def test_choose_threshold_cases(good, defective, expected):
    threshold = choose_threshold(np.array(good), None if defective is None else np.array(defective), escape_cost=5.0)

    assert threshold == pytest.approx(expected)


def test_choose_threshold_without_good_scores_rejected():
    with pytest.raises(TrainingError, match="no held-out good image"):
        choose_threshold(np.array([]))


def test_nearest_distances_match_brute_force():
    generator = torch.Generator().manual_seed(0)
    queries, bank = torch.randn(300, 16, generator=generator), torch.randn(500, 16, generator=generator)

    expected = torch.cdist(queries, bank).min(dim=1).values

    assert torch.allclose(nearest_distances(queries, bank), expected, atol=1e-4)


def test_coreset_covers_every_cluster():
    generator = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0] * 8, [10.0] * 8, [-10.0] * 8])
    features = torch.cat([center + 0.1 * torch.randn(50, 8, generator=generator) for center in centers])

    selected = greedy_coreset(features, 3, seed=0)

    assert sorted((selected // 50).tolist()) == [0, 1, 2]
