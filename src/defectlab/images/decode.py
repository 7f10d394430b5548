"""Decode image bytes into pixels the same way everywhere.

Import, training, prediction and every view call ``decode_image`` so that a
picture means the same pixels on every path:

* The format comes from the content, never from the file name.
* EXIF orientation is applied once, here, so sizes and boxes refer to the
  image as displayed.
* Transparency is flattened onto black (``ALPHA_BACKGROUND``).
* 16-bit and 12-bit grayscale stay ``uint16``; the effective bit depth is the
  number of bits the largest value needs, rounded up to 8, 10, 12, 14 or 16.
* A truncated or corrupt file raises ``ImageDecodeError``; it never turns into
  half-grey pixels.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from defectlab.errors import ImageDecodeError, InvalidInputError

__all__ = ["ALPHA_BACKGROUND", "DecodedImage", "decode_image", "max_pixels"]

ALPHA_BACKGROUND = 0
"""Grey level (0 = black) that transparent pixels are flattened onto."""

DEFAULT_MAX_PIXELS = 200_000_000
"""Largest image accepted, in pixels; ``DEFECTLAB_MAX_PIXELS`` overrides it."""

_MODES_16BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


@dataclass(frozen=True)
class DecodedImage:
    """Pixels of one image as displayed, with what was learned decoding it.

    Attributes:
        pixels: ``(H, W)`` for grayscale or ``(H, W, 3)`` for RGB, dtype
            ``uint8`` or ``uint16``.
        format: Container format found in the content, such as ``"PNG"``.
        bit_depth: Effective bits per sample: 8, 10, 12, 14 or 16.
        rotated: Whether an EXIF orientation other than 1 was applied.
        had_alpha: Whether an alpha channel or transparent palette entry was
            flattened onto ``ALPHA_BACKGROUND``.
    """

    pixels: np.ndarray
    format: str
    bit_depth: int
    rotated: bool
    had_alpha: bool

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return 1 if self.pixels.ndim == 2 else int(self.pixels.shape[2])


def max_pixels() -> int:
    """Return the pixel-count limit, from ``DEFECTLAB_MAX_PIXELS`` when set."""
    text = os.environ.get("DEFECTLAB_MAX_PIXELS")
    if text is None:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        raise InvalidInputError(
            f"DEFECTLAB_MAX_PIXELS is {text!r}, expected a whole number of pixels such as 200000000"
        ) from None
    if value <= 0:
        raise InvalidInputError(f"DEFECTLAB_MAX_PIXELS is {value}, expected a positive number of pixels")
    return value


def decode_image(data: bytes, *, source: str = "<bytes>") -> DecodedImage:
    """Decode encoded image bytes into display-oriented pixels.

    Args:
        data: The file's bytes, in any format Pillow reads (TIFF also through
            tifffile for layouts Pillow cannot read).
        source: Name used in error messages, usually the file's path.

    Raises:
        ImageDecodeError: The bytes are empty, truncated, corrupt, too large
            or of an unsupported pixel type. The message names ``source``.
    """
    if not data:
        raise ImageDecodeError(f"{source}: the file is empty (0 bytes); re-export or re-copy it from the camera")

    wide_tiff = _open_wide_tiff(data, source)
    if wide_tiff is not None:
        pixels, had_alpha = _array_from_tiff(wide_tiff.array, source)
        return DecodedImage(pixels, "TIFF", effective_bit_depth(pixels), rotated=False, had_alpha=had_alpha)

    # NOTE: Pillow reads 16-bit RGB PNG files as 8-bit RGB, so such colour
    # images lose their low bits; 16-bit grayscale PNG keeps all of them.
    image, fmt = _open_checked(data, source)
    rotated = _orientation(image) not in (None, 1)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception as error:  # noqa: BLE001 - Pillow raises many types on a bad EXIF block
        raise ImageDecodeError(f"{source}: the EXIF orientation could not be applied ({error})") from error

    pixels, had_alpha = _to_array(image, source)
    return DecodedImage(
        pixels=pixels,
        format=fmt,
        bit_depth=effective_bit_depth(pixels),
        rotated=rotated,
        had_alpha=had_alpha,
    )


def effective_bit_depth(pixels: np.ndarray) -> int:
    """Return the bits the largest sample needs, rounded up to 8, 10, 12, 14 or 16."""
    if pixels.dtype == np.uint8 or pixels.size == 0:
        return 8
    needed = int(pixels.max()).bit_length()
    for depth in (8, 10, 12, 14, 16):
        if needed <= depth:
            return depth
    return 16


def _open_checked(data: bytes, source: str) -> tuple[Image.Image, str]:
    limit = max_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_size(image, limit, source)
            if image.format == "PNG":
                # load() skips chunk checksums; verify() checks them, on its own handle.
                Image.open(io.BytesIO(data)).verify()
            previous_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # our own limit was checked above
            try:
                image.load()
            finally:
                Image.MAX_IMAGE_PIXELS = previous_limit
    except ImageDecodeError:
        raise
    except Exception as error:  # noqa: BLE001 - Pillow signals bad data with OSError, SyntaxError, ValueError...
        fallback = _open_tiff(data, source)
        if fallback is not None:
            return fallback, "TIFF"
        raise ImageDecodeError(f"{source}: {_describe(error)}") from error
    return image, image.format or "unknown"


def _check_size(image: Image.Image, limit: int, source: str) -> None:
    width, height = image.size
    if width * height > limit:
        raise ImageDecodeError(
            f"{source}: {width}x{height} is {width * height} pixels, above the limit of {limit}; "
            "raise DEFECTLAB_MAX_PIXELS if images this large are expected"
        )
    if width == 0 or height == 0:
        raise ImageDecodeError(f"{source}: the image has no pixels ({width}x{height})")


def _open_tiff(data: bytes, source: str) -> Image.Image | None:
    """Read TIFF layouts Pillow cannot, such as 16-bit RGB; None if not a TIFF."""
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    import tifffile

    try:
        array = tifffile.imread(io.BytesIO(data))
    except Exception as error:  # noqa: BLE001 - tifffile raises many types on corrupt files
        raise ImageDecodeError(f"{source}: the TIFF file could not be read ({error})") from error
    return _TiffImage(array, source)


class _TiffImage(Image.Image):
    """Carrier for a tifffile array, so the rest of decoding handles one type."""

    def __init__(self, array: np.ndarray, source: str) -> None:
        super().__init__()
        if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[2] not in (3, 4):
            array = np.moveaxis(array, 0, -1)
        if array.ndim not in (2, 3):
            raise ImageDecodeError(f"{source}: TIFF with shape {array.shape} is not a single 2-D image")
        self.array = array
        self._size = (array.shape[1], array.shape[0])
        self._mode = "TIFFARRAY"

    def getexif(self) -> Image.Exif:
        return Image.Exif()


def _open_wide_tiff(data: bytes, source: str) -> _TiffImage | None:
    """Return multi-channel TIFFs with more than 8 bits per sample, which Pillow would cut to 8 bits."""
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tiff:
            page = tiff.pages[0]
            if page.dtype is None or page.dtype.itemsize == 1 or len(page.shape) != 3:
                return None
    except Exception:  # noqa: BLE001 - let the normal path report a corrupt file
        return None
    return _open_tiff(data, source)


def _orientation(image: Image.Image) -> int | None:
    try:
        return image.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - a broken EXIF block means no usable orientation
        return None


def _to_array(image: Image.Image, source: str) -> tuple[np.ndarray, bool]:
    if isinstance(image, _TiffImage):
        return _array_from_tiff(image.array, source)

    mode = image.mode
    if mode == "P":
        has_transparency = "transparency" in image.info
        image = image.convert("RGBA" if has_transparency else "RGB")
        mode = image.mode
    if mode in ("1", "L"):
        return np.asarray(image.convert("L"), dtype=np.uint8), False
    if mode in _MODES_16BIT:
        array = np.asarray(image)
        return np.clip(array, 0, 65535).astype(np.uint16), False
    if mode == "LA":
        return _flatten(np.asarray(image.convert("LA"))), True
    if mode in ("RGBA", "PA", "La", "RGBa"):
        return _flatten(np.asarray(image.convert("RGBA"))), True
    if mode in ("RGB", "CMYK", "YCbCr", "LAB", "HSV"):
        return np.asarray(image.convert("RGB"), dtype=np.uint8), False
    raise ImageDecodeError(
        f"{source}: pixel mode {mode!r} is not supported; save the image as 8- or 16-bit grayscale or 8-bit RGB"
    )


def _array_from_tiff(array: np.ndarray, source: str) -> tuple[np.ndarray, bool]:
    if array.dtype not in (np.uint8, np.uint16):
        raise ImageDecodeError(
            f"{source}: TIFF samples of type {array.dtype} are not supported; save as 8- or 16-bit unsigned integers"
        )
    if array.ndim == 3 and array.shape[2] == 4:
        return _flatten(array), True
    if array.ndim == 3 and array.shape[2] == 1:
        return array[:, :, 0], False
    return array, False


def _flatten(array: np.ndarray) -> np.ndarray:
    """Composite a (H, W, 2) or (H, W, 4) array onto ``ALPHA_BACKGROUND``."""
    color = array[..., :-1].astype(np.float64)
    top = np.iinfo(array.dtype).max
    alpha = array[..., -1:].astype(np.float64) / top
    background = ALPHA_BACKGROUND * top / 255.0
    blended = color * alpha + background * (1.0 - alpha)
    result = np.rint(blended).astype(array.dtype)
    return result[..., 0] if result.shape[-1] == 1 else result


def _describe(error: Exception) -> str:
    text = str(error) or type(error).__name__
    lowered = text.lower()
    if "truncated" in lowered:
        return f"the file is truncated ({text}); copy it again from its source"
    if "cannot identify image file" in lowered:
        return "the content is not an image format that can be read (checked the bytes, not the extension)"
    if "crc" in lowered or "broken" in lowered:
        return f"the file is corrupt ({text}); copy it again from its source"
    return f"the image could not be decoded ({text})"
