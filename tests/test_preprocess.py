"""Preprocessing: intensity window, resizing and normalization."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from defectlab.errors import InvalidInputError
from defectlab.models.preprocess import LITE_MEAN, LITE_STD, Preprocessing, fit_preprocessing, to_tensor


def _narrow_16bit(rng: np.random.Generator, *, with_patch: bool) -> np.ndarray:
    """A 16-bit image with background near 900 and, optionally, a 1150 patch at rows/cols 20..40."""
    pixels = rng.normal(900, 8, size=(120, 100)).clip(0, 65535).astype(np.uint16)
    if with_patch:
        pixels[20:40, 20:40] = 1150
    return pixels


def _to_window(tensor: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """Undo the normalization of channel 0, giving values in the 0..1 window."""
    return tensor[0] * prep.std[0] + prep.mean[0]


def test_narrow_16bit_patch_stays_visible():
    rng = np.random.default_rng(0)
    prep = fit_preprocessing([_narrow_16bit(rng, with_patch=False) for _ in range(5)], (60, 50))

    window = _to_window(to_tensor(_narrow_16bit(rng, with_patch=True), prep), prep)

    assert 850 < prep.window[0] < 900 < prep.window[1] < 1000
    assert float(window[12:18, 12:18].mean()) > 0.95  # the patch, at half resolution
    assert float(window[40:, 30:].mean()) < 0.7
    assert float(window[12:18, 12:18].mean() - window[40:, 30:].mean()) > 0.4


def test_output_shape_dtype_and_gray_replicated():
    prep = Preprocessing(input_size=(32, 48), window=(0.0, 255.0))
    pixels = np.arange(100 * 70, dtype=np.uint32).reshape(100, 70).astype(np.uint8)

    tensor = to_tensor(pixels, prep)

    assert tensor.shape == (3, 32, 48)
    assert tensor.dtype == torch.float32
    assert torch.equal(tensor[0], tensor[1])
    assert torch.equal(tensor[0], tensor[2])


def test_window_maps_to_normalized_range():
    prep = Preprocessing(input_size=(32, 32), window=(100.0, 200.0))
    dark = np.full((32, 32), 50, dtype=np.uint8)
    bright = np.full((32, 32), 250, dtype=np.uint8)

    assert torch.allclose(to_tensor(dark, prep)[0], torch.tensor(-LITE_MEAN[0] / LITE_STD[0]))
    assert torch.allclose(to_tensor(bright, prep)[0], torch.tensor((1 - LITE_MEAN[0]) / LITE_STD[0]))


def test_rgb_channels_kept_apart():
    prep = Preprocessing(input_size=(32, 32), window=(0.0, 255.0))
    pixels = np.zeros((40, 40, 3), dtype=np.uint8)
    pixels[..., 0] = 255

    tensor = to_tensor(pixels, prep)

    assert float(tensor[0].mean()) > 0.9
    assert float(tensor[1].mean()) < -0.9


def test_same_input_gives_identical_tensor():
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 4096, size=(211, 157), dtype=np.uint16)
    prep = fit_preprocessing([pixels], (64, 64))

    assert torch.equal(to_tensor(pixels, prep), to_tensor(pixels.copy(), prep))


def test_dict_round_trip():
    prep = Preprocessing(input_size=(640, 256), window=(12.5, 3000.0), full_scale=65535.0)

    assert Preprocessing.from_dict(prep.to_dict()) == prep


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        (np.zeros((10, 10), dtype=np.float64), "dtype float64"),
        (np.zeros((10, 10, 4), dtype=np.uint8), "shape"),
        (np.zeros((0, 10), dtype=np.uint8), "no pixels"),
    ],
)
def test_invalid_pixels_rejected(pixels, message):
    prep = Preprocessing(input_size=(32, 32), window=(0.0, 255.0))

    with pytest.raises(InvalidInputError, match=message):
        to_tensor(pixels, prep)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_size": (16, 64), "window": (0.0, 1.0)}, "at least 32"),
        ({"input_size": (64, 64), "window": (5.0, 5.0)}, "greater than 'low'"),
    ],
)
def test_invalid_settings_rejected(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        Preprocessing(**kwargs)


def test_fit_without_images_rejected():
    with pytest.raises(InvalidInputError, match="no training image"):
        fit_preprocessing([], (64, 64))


def test_16bit_copy_of_8bit_image_gives_same_input() -> None:
    rng = np.random.default_rng(3)
    eight = rng.integers(0, 256, size=(40, 50), dtype=np.uint8)
    sixteen = eight.astype(np.uint16) * 257
    prep = fit_preprocessing([eight], (32, 32))
    assert prep.full_scale == 255.0
    assert np.allclose(to_tensor(sixteen, prep).numpy(), to_tensor(eight, prep).numpy(), atol=1e-5)


def test_mixed_bit_depths_fit_one_window() -> None:
    rng = np.random.default_rng(4)
    eight = rng.integers(100, 156, size=(40, 40), dtype=np.uint8)
    sixteen = eight.astype(np.uint16) * 257
    prep = fit_preprocessing([eight, sixteen], (32, 32))
    assert prep.full_scale == 65535.0
    # Both images hold the same values on the 0..1 scale, so the window spans about 100/255..155/255 of 65535,
    # widened by a quarter of the span on each side.
    span = (155 - 100) * 257
    assert prep.window[0] == pytest.approx(100 * 257 - 0.25 * span, rel=0.02)
    assert prep.window[1] == pytest.approx(155 * 257 + 0.25 * span, rel=0.02)
    assert np.allclose(to_tensor(sixteen, prep).numpy(), to_tensor(eight, prep).numpy(), atol=1e-5)


def test_model_saved_without_full_scale_keeps_its_units() -> None:
    saved = Preprocessing((32, 32), (900.0, 1200.0), full_scale=65535.0).to_dict()
    del saved["full_scale"]
    assert Preprocessing.from_dict(saved).full_scale == 65535.0
    saved["window"] = [10.0, 200.0]
    assert Preprocessing.from_dict(saved).full_scale == 255.0


def test_unusual_inputs_get_warnings() -> None:
    from defectlab.images.prepare import check_input

    rng = np.random.default_rng(8)
    eight = rng.integers(60, 200, size=(50, 50), dtype=np.uint8)
    prep = fit_preprocessing([eight], (32, 32))
    assert check_input(eight, prep) == []
    same_in_sixteen = check_input(eight.astype(np.uint16) * 257, prep)
    assert len(same_in_sixteen) == 1
    assert "16-bit" in same_in_sixteen[0]
    twelve_bit = check_input(eight.astype(np.uint16) * 16, prep)
    assert len(twelve_bit) == 2
    assert "outside the intensity range" in twelve_bit[1]


def _exposure(rng: np.random.Generator, gain: float) -> np.ndarray:
    """A textured 8-bit part with a dark 10 x 10 spot, photographed with the given exposure gain."""
    scene = 100.0 + 25.0 * np.sin(np.arange(80)[:, None] / 3.0) + rng.normal(0, 4, size=(80, 80))
    scene[30:40, 30:40] = 40.0
    return np.clip(scene * gain, 0, 255).astype(np.uint8)


def test_stretch_makes_exposures_alike() -> None:
    rng = np.random.default_rng(4)
    dark, bright = _exposure(rng, 0.6), _exposure(rng, 1.8)
    unstretched = Preprocessing(input_size=(40, 40), window=(0.0, 255.0))
    stretched = Preprocessing(input_size=(40, 40), window=(0.0, 255.0), stretch=True)

    unstretched_gap = float((to_tensor(bright, unstretched) - to_tensor(dark, unstretched)).abs().mean())
    stretched_gap = float((to_tensor(bright, stretched) - to_tensor(dark, stretched)).abs().mean())
    window = _to_window(to_tensor(bright, stretched), stretched)

    assert unstretched_gap > 0.5
    assert stretched_gap < 0.1 * unstretched_gap
    # The 1st and 99th percentiles land on 0.1 and 0.9, so the dark spot stays darker than the rest.
    values = np.sort(window.numpy().ravel())
    assert values[int(0.01 * values.size)] == pytest.approx(0.1, abs=0.03)
    assert values[int(0.99 * values.size) - 1] == pytest.approx(0.9, abs=0.03)
    assert float(window[15:20, 15:20].mean()) < float(window[25:, 25:].mean()) - 0.3


def test_stretch_leaves_flat_image_flat() -> None:
    prep = Preprocessing(input_size=(32, 32), window=(0.0, 255.0), stretch=True)
    rng = np.random.default_rng(5)
    flat = (120 + rng.integers(0, 2, size=(32, 32))).astype(np.uint8)

    window = _to_window(to_tensor(flat, prep), prep)

    # One grey level of noise may move a pixel by at most 1 / (0.02 * 255 / 0.8) of the range.
    assert float(window.max() - window.min()) <= 0.8 / (0.02 * 255) + 1e-5


def test_auto_stretch_follows_brightness_spread() -> None:
    rng = np.random.default_rng(6)
    varied = [_exposure(rng, gain) for gain in (0.5, 0.7, 1.0, 1.4, 2.0)]
    steady = [_exposure(rng, gain) for gain in (0.95, 1.0, 1.05, 1.0, 0.98)]

    assert fit_preprocessing(varied, (40, 40), stretch="auto").stretch
    assert not fit_preprocessing(steady, (40, 40), stretch="auto").stretch
    assert not fit_preprocessing(varied, (40, 40), stretch="never").stretch
    assert fit_preprocessing(steady, (40, 40), stretch="always").stretch
    with pytest.raises(InvalidInputError, match=r"stretch 'often' is invalid"):
        fit_preprocessing(steady, (40, 40), stretch="often")


def test_model_saved_before_stretch_does_not_stretch() -> None:
    saved = Preprocessing(input_size=(64, 64), window=(0.0, 255.0), stretch=True).to_dict()
    del saved["stretch"]

    assert Preprocessing.from_dict(saved).stretch is False
    assert Preprocessing.from_dict({**saved, "stretch": True}).stretch is True
