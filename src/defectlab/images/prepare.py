"""Turn decoded pixels into network input, identically in training, prediction and the ONNX runtime.

A model stores its ``Preprocessing`` and every path (training, evaluation,
prediction, export) calls ``to_tensor`` with it, so an image always becomes the
same tensor:

1. Resize to the model's input size with an antialiasing bilinear filter (Pillow,
   in float32, so 16-bit values keep their precision). The aspect ratio is not
   kept; the auto-tuner picks an input size close to the images' own ratio.
2. Bring the values to the training images' full scale (``full_scale``): 255 when
   they were all 8-bit, 65535 when any was 16-bit. An 8-bit image and the same
   image stored in 16 bits (values times 257) then become the same input.
3. Map the intensity window ``(low, high)``, in full-scale units, to 0..1 and
   clip. The window is fitted once on the training images
   (``fit_preprocessing``), which makes a narrow 16-bit range such as 900..1200,
   or 12-bit data stored in 16 bits, as usable as full-range 8-bit data.
   With ``stretch`` set, each image gets its own window instead: its 1st and
   99th percentiles (after resizing) map to 0.1 and 0.9. The auto-tuner sets it
   when the training images' brightness varies widely, as with changing exposure,
   so that parts photographed darker or brighter look alike to the model (see
   ``fit_preprocessing``).
4. Replicate grayscale to three channels.
5. Normalize each channel with ``mean`` and ``std``.

The default ``mean`` and ``std`` (127/255 and 128/255) are those the
EfficientNet-Lite ImageNet weights were trained with, which map 0..1 to about
-1..1. The ImageNet-statistics normalization (mean 0.485, 0.456, 0.406) fits the
batch-normalization running statistics of these weights worse: on natural test
images, the variance of the stem's output differs from its running variance by a
factor of about 4 per channel, against about 1.3 with these defaults. ``tests/test_efficientnet.py`` checks this.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from defectlab.errors import InvalidInputError

logger = logging.getLogger(__name__)

__all__ = [
    "BRIGHTNESS_SPREAD",
    "LITE_MEAN",
    "LITE_STD",
    "STRETCH_CHOICES",
    "Preprocessing",
    "brightness_spread",
    "check_input",
    "fit_preprocessing",
    "to_array",
    "to_arrays",
]

LITE_MEAN = (127.0 / 255.0,) * 3
"""Per-channel mean, on the 0..1 scale, that the EfficientNet-Lite weights expect."""

LITE_STD = (128.0 / 255.0,) * 3
"""Per-channel standard deviation, on the 0..1 scale, that the EfficientNet-Lite weights expect."""

_SAMPLES_PER_IMAGE = 20_000
"""Pixels drawn from each image when fitting the window; bounds time and memory."""

STRETCH_PERCENTILES = (1.0, 99.0)
"""Percentiles of an image's own intensities that a stretched image maps to ``_STRETCH_TARGET``."""

_STRETCH_TARGET = (0.1, 0.9)
"""Input values, on the 0..1 scale, of a stretched image's percentiles.

The margins below 0.1 and above 0.9 keep brighter or darker defects unclipped.
"""

_STRETCH_MIN_SPAN = 0.02
"""Smallest percentile span stretched, as a share of full scale, so a flat image's noise is not blown up."""

BRIGHTNESS_SPREAD = 1.5
"""Ratio of bright to dark images' median intensity (90th to 10th percentile over the
training images) above which ``stretch="auto"`` stretches each image.

Magnetic-tile images, photographed at several exposures, have a ratio of 2.3.
There, stretching raised the anomaly model's dev AUROC from 0.952 to 0.963 (96 x 96
px, two halves of the dev images each calibrating for the other). It raised the
patch classifier's from 0.987 to 0.992 (5-fold cross-validation over the train and
dev images). KolektorSDD, at one exposure, has 1.13 and is not stretched: there it made no
difference on the dev images (0.939 against 0.938).
"""

STRETCH_CHOICES = ("auto", "always", "never")
"""Values of ``fit_preprocessing``'s ``stretch``: decide from the images, or stretch always or never."""


@dataclass(frozen=True)
class Preprocessing:
    """Settings that turn pixels into a model's input tensor.

    Attributes:
        input_size: Network input ``(height, width)`` in pixels.
        window: ``(low, high)`` intensities in ``full_scale`` units that map to 0
            and 1; values outside are clipped.
        full_scale: Maximum value of the training images' pixel type (255 or
            65535); an image of the other type is rescaled to it first.
        mean: Per-channel mean subtracted after windowing, on the 0..1 scale.
        std: Per-channel standard deviation divided by after subtracting ``mean``.
        stretch: Map each image's own 1st to 99th intensity percentiles to 0.1..0.9
            in place of ``window`` (see the module docstring).
    """

    input_size: tuple[int, int]
    window: tuple[float, float]
    full_scale: float = 255.0
    mean: tuple[float, float, float] = field(default=LITE_MEAN)
    std: tuple[float, float, float] = field(default=LITE_STD)
    stretch: bool = False

    def __post_init__(self) -> None:
        height, width = self.input_size
        if min(height, width) < 32:
            raise InvalidInputError(
                f"input size {height}x{width} (height x width) is invalid; both sides must be at least 32 pixels"
            )
        low, high = self.window
        if not high > low:
            raise InvalidInputError(
                f"intensity window ({low}, {high}) is invalid; 'high' must be greater than 'low'"
            )
        if self.full_scale not in (255.0, 65535.0):
            raise InvalidInputError(f"full scale {self.full_scale} is invalid; use 255 (8-bit) or 65535 (16-bit)")
        if high > self.full_scale:
            raise InvalidInputError(
                f"intensity window ({low}, {high}) is invalid; it must lie within 0..{self.full_scale:g}"
            )
        if min(self.std) <= 0:
            raise InvalidInputError(f"normalization std {self.std} is invalid; every value must be positive")

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as plain lists and floats, ready for JSON or ``torch.save``."""
        return {
            "input_size": [int(v) for v in self.input_size],
            "window": [float(v) for v in self.window],
            "full_scale": float(self.full_scale),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "stretch": bool(self.stretch),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        """Rebuild from the output of ``to_dict``.

        Raises:
            InvalidInputError: A key is missing or a value is invalid.
        """
        try:
            return cls(
                input_size=(int(data["input_size"][0]), int(data["input_size"][1])),
                window=(float(data["window"][0]), float(data["window"][1])),
                full_scale=float(data.get("full_scale") or _legacy_full_scale(data["window"])),
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
                # Models saved before the stretch existed did not stretch.
                stretch=bool(data.get("stretch", False)),
            )
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise InvalidInputError(
                f"preprocessing settings {data!r} are invalid ({error!r}); "
                "expected keys input_size, window, mean and std as written by Preprocessing.to_dict()"
            ) from error


def fit_preprocessing(
    images: Iterable[np.ndarray],
    input_size: tuple[int, int],
    *,
    percentiles: tuple[float, float] = (0.5, 99.5),
    margin: float = 0.25,
    seed: int = 0,
    stretch: str = "never",
) -> Preprocessing:
    """Fit the intensity window on training images.

    The window spans the given percentiles of the pixels of all images, widened on
    each side by ``margin`` times that span so that moderately brighter or darker
    defects stay below saturation, and kept inside the range of the pixel type.

    Args:
        images: Training pixels, each ``(H, W)`` or ``(H, W, 3)``, uint8 or uint16.
            Read once, one at a time.
        input_size: Network input ``(height, width)`` in pixels.
        percentiles: Lower and upper percentile, each in 0..100.
        margin: Widening on each side, as a fraction of the percentile span (>= 0).
        seed: Seed of the pixel sampling, so the same images give the same window.
        stretch: ``"always"`` or ``"never"`` stretch each image (see the module
            docstring); ``"auto"`` stretches when the images' brightness varies
            widely: the 90th percentile of their median intensities is more than
            ``BRIGHTNESS_SPREAD`` times the 10th.

    Raises:
        InvalidInputError: No image was given, an image has an unsupported shape
            or dtype, or ``stretch`` is not one of ``STRETCH_CHOICES``.
    """
    if stretch not in STRETCH_CHOICES:
        raise InvalidInputError(f"stretch {stretch!r} is invalid; use one of {list(STRETCH_CHOICES)}")
    rng = np.random.default_rng(seed)
    samples, type_max = [], 255.0
    for pixels in images:
        _check_pixels(pixels)
        own_max = float(np.iinfo(pixels.dtype).max)
        type_max = max(type_max, own_max)
        flat = pixels.reshape(-1)
        take = min(flat.size, _SAMPLES_PER_IMAGE)
        # Samples are kept as fractions of their own type's maximum, so 8- and 16-bit images mix.
        samples.append(flat[rng.choice(flat.size, size=take, replace=False)].astype(np.float32) / own_max)
    if not samples:
        raise InvalidInputError("no training image was given, so the intensity window cannot be fitted")

    low, high = np.percentile(np.concatenate(samples), percentiles) * type_max
    span = max(float(high - low), 1.0)
    low = max(float(low) - margin * span, 0.0)
    high = min(float(high) + margin * span, type_max)
    stretched = stretch == "always" or (stretch == "auto" and brightness_spread(samples) > BRIGHTNESS_SPREAD)
    return Preprocessing(input_size=(int(input_size[0]), int(input_size[1])), window=(low, max(high, low + 1.0)),
                         full_scale=type_max, stretch=stretched)


def brightness_spread(samples: Sequence[np.ndarray]) -> float:
    """Return the 90th over the 10th percentile of the images' median intensities, >= 1.

    Args:
        samples: Per image, pixel values as fractions of the pixel type's maximum.
    """
    medians = np.array([np.median(sample) for sample in samples if sample.size], dtype=np.float64)
    if medians.size == 0:
        return 1.0
    dark, bright = np.percentile(np.maximum(medians, 0.01), (10, 90))
    spread = float(bright / dark)
    logger.info("brightness spread of %d images: %.2f (stretch above %.2f)", medians.size, spread, BRIGHTNESS_SPREAD)
    return spread


def _legacy_full_scale(window: Sequence[float]) -> float:
    """Return the full scale of a model saved before ``full_scale`` existed: 65535 if its window needs it."""
    return 65535.0 if float(window[1]) > 255.0 else 255.0


def _check_pixels(pixels: np.ndarray) -> None:
    if not isinstance(pixels, np.ndarray):
        raise InvalidInputError(f"pixels of type {type(pixels).__name__} are invalid; pass a NumPy array")
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (1, 3)):
        raise InvalidInputError(
            f"pixels of shape {pixels.shape} are invalid; expected (H, W) grayscale or (H, W, 3) RGB"
        )
    if pixels.dtype not in (np.uint8, np.uint16):
        raise InvalidInputError(
            f"pixels of dtype {pixels.dtype} are invalid; expected uint8 or uint16 as decode_image returns them"
        )
    if min(pixels.shape[:2]) < 1:
        raise InvalidInputError(f"pixels of shape {pixels.shape} are invalid; the image has no pixels")


def to_array(pixels: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """Turn one image into the network input, as a NumPy array.

    Args:
        pixels: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``, uint8 or uint16, in native
            units (as ``decode_image`` returns them).
        prep: The model's preprocessing.

    Returns:
        float32 ``(3, height, width)`` with ``(height, width) = prep.input_size``;
        each channel is ``(clip((v - low) / (high - low), 0, 1) - mean) / std``.

    Raises:
        InvalidInputError: ``pixels`` has an unsupported shape or dtype.
    """
    _check_pixels(pixels)

    channels = [pixels] if pixels.ndim == 2 else [pixels[:, :, c] for c in range(pixels.shape[2])]
    resized = np.stack([_resize_channel(channel, prep.input_size) for channel in channels])
    if resized.shape[0] == 1:
        resized = np.repeat(resized, 3, axis=0)

    own_max = float(np.iinfo(pixels.dtype).max)
    if own_max != prep.full_scale:
        resized *= np.float32(prep.full_scale / own_max)
    low, high = _own_window(resized, prep) if prep.stretch else prep.window
    scaled = np.clip((resized - low) / (high - low), 0.0, 1.0)
    mean = np.asarray(prep.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(prep.std, dtype=np.float32)[:, None, None]
    return ((scaled - mean) / std).astype(np.float32)


def _own_window(resized: np.ndarray, prep: Preprocessing) -> tuple[float, float]:
    """Return the window that maps this image's stretch percentiles to ``_STRETCH_TARGET``."""
    first, last = np.percentile(resized, STRETCH_PERCENTILES)
    span = max(float(last - first), _STRETCH_MIN_SPAN * prep.full_scale)
    start, end = _STRETCH_TARGET
    scale = span / (end - start)
    return float(first) - start * scale, float(first) + (1.0 - start) * scale


def check_input(pixels: np.ndarray, prep: Preprocessing, *, clipped_share: float = 0.25) -> list[str]:
    """Return warnings about an image unlike the model's training images; empty when it looks usual.

    Two signs are checked. The first is a pixel type other than the training
    images'. Such an image is rescaled, which suits 8-bit data stored in 16 bits
    but not 12-bit data. The second is more than ``clipped_share`` of the pixels
    outside the intensity window fitted on the training images, as another
    exposure or camera gives.
    """
    warnings = []
    own_max = float(np.iinfo(pixels.dtype).max)
    if own_max != prep.full_scale:
        warnings.append(f"the image is {_bits(own_max)}-bit and the model was trained on {_bits(prep.full_scale)}-bit "
                        "images; its values were rescaled, so check that the camera settings match")
    values = pixels.reshape(-1)[:: max(1, pixels.size // 20_000)].astype(np.float32) * (prep.full_scale / own_max)
    low, high = prep.window
    outside = float(np.mean((values < low) | (values > high)))
    if outside > clipped_share:
        warnings.append(f"{outside:.0%} of the pixels are outside the intensity range of the training images "
                        f"({low:.0f} to {high:.0f}); a different exposure or camera can make the score unreliable")
    return warnings


def _bits(full_scale: float) -> int:
    return 8 if full_scale <= 255 else 16


def to_arrays(images: Sequence[np.ndarray], prep: Preprocessing) -> np.ndarray:
    """Stack ``to_array`` of each image into float32 ``(N, 3, height, width)``."""
    height, width = prep.input_size
    if len(images) == 0:
        return np.zeros((0, 3, height, width), dtype=np.float32)
    return np.stack([to_array(pixels, prep) for pixels in images])


def _resize_channel(channel: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """Resize one channel to ``input_size`` (height, width); float32 out, native units kept."""
    height, width = input_size
    plane = np.ascontiguousarray(channel, dtype=np.float32)
    if plane.shape == (height, width):
        return plane
    # Pillow widens the bilinear kernel by the scale factor when shrinking, which
    # antialiases; mode "F" keeps 16-bit values exact.
    image = Image.fromarray(plane).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float32)
