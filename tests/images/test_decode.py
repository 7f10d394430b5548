"""Decoding: bit depth, alpha, EXIF orientation and broken files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from defectlab.errors import ImageDecodeError
from defectlab.images import ALPHA_BACKGROUND, decode_image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    stream = io.BytesIO()
    image.save(stream, format=fmt, **options)
    return stream.getvalue()


def narrow_16bit() -> np.ndarray:
    rng = np.random.default_rng(0)
    pixels = (900 + rng.normal(0, 5, (256, 256))).astype(np.uint16)
    pixels[100:120, 100:120] = 1150
    return pixels


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_narrow_range_kept(fmt: str) -> None:
    pixels = narrow_16bit()
    decoded = decode_image(encode(Image.fromarray(pixels), fmt))
    assert decoded.pixels.dtype == np.uint16
    assert np.array_equal(decoded.pixels, pixels)
    assert decoded.bit_depth == 12  # 1150 needs 11 bits


def test_12bit_data_in_16bit_file() -> None:
    pixels = np.zeros((128, 128), dtype=np.uint16)
    pixels[60:70, 60:70] = 4000
    pixels[0, 0] = 4095
    decoded = decode_image(encode(Image.fromarray(pixels), "PNG"))
    assert decoded.bit_depth == 12
    assert decoded.pixels.max() == 4095


def test_8bit_depth() -> None:
    decoded = decode_image(encode(Image.new("L", (8, 8), 200), "PNG"))
    assert decoded.bit_depth == 8
    assert decoded.pixels.dtype == np.uint8


def test_rgba_flattened_onto_background() -> None:
    rgba = np.zeros((416, 339, 4), dtype=np.uint8)
    rgba[50:-50, 50:-50] = (200, 100, 50, 255)
    rgba[:50, :, :3] = 255  # colour under a fully transparent border must not show
    decoded = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert decoded.had_alpha
    assert decoded.pixels.shape == (416, 339, 3)
    assert (decoded.pixels[:50] == ALPHA_BACKGROUND).all()
    assert tuple(decoded.pixels[200, 150]) == (200, 100, 50)


def test_palette_transparency_matches_rgba() -> None:
    palette_image = Image.new("P", (20, 10), 0)
    palette_image.putpalette([0, 0, 0, 250, 10, 10] + [0] * 762)
    palette_image.paste(1, (5, 0, 20, 10))
    palette_image.info["transparency"] = 0
    palette_bytes = encode(palette_image, "PNG", transparency=0)
    rgba_bytes = encode(palette_image.convert("RGBA"), "PNG")
    from_palette = decode_image(palette_bytes)
    from_rgba = decode_image(rgba_bytes)
    assert from_palette.had_alpha
    assert np.array_equal(from_palette.pixels, from_rgba.pixels)
    assert tuple(from_palette.pixels[0, 0]) == (0, 0, 0)
    assert tuple(from_palette.pixels[0, 10]) == (250, 10, 10)


def test_exif_orientation_applied_once() -> None:
    stored = np.zeros((40, 100, 3), dtype=np.uint8)  # height 40, width 100
    stored[:, :10] = 255  # bright band at the stored left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(Image.fromarray(stored), "JPEG", exif=exif.tobytes(), quality=95)
    decoded = decode_image(data)
    assert decoded.rotated
    assert (decoded.width, decoded.height) == (40, 100)
    assert decoded.pixels[:10].mean() > 200  # the left band is now at the top
    assert decoded.pixels[-10:].mean() < 50


def test_format_from_content_not_extension() -> None:
    decoded = decode_image(encode(Image.new("L", (4, 4), 7), "PNG"), source="looks_like.jpg")
    assert decoded.format == "PNG"


def corrupt_png_crc(data: bytes) -> bytes:
    start = data.index(b"IDAT") - 4
    length = struct.unpack(">I", data[start:start + 4])[0]
    crc_at = start + 8 + length
    bad_crc = struct.pack(">I", (zlib.crc32(data[start + 4:crc_at]) + 1) & 0xFFFFFFFF)
    return data[:crc_at] + bad_crc + data[crc_at + 4:]


def broken_inputs() -> dict[str, tuple[bytes, str]]:
    rng = np.random.default_rng(1)
    jpeg = encode(Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)), "JPEG")
    png = encode(Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)), "PNG")
    return {
        "truncated.jpg": (jpeg[: len(jpeg) * 6 // 10], "truncated"),
        "empty.jpg": (b"", "empty"),
        "bad_crc.png": (corrupt_png_crc(png), "corrupt"),
        "text.png": (b"not an image at all", "not an image"),
    }


@pytest.mark.parametrize("name", sorted(broken_inputs()))
def test_broken_file_rejected_with_reason(name: str) -> None:
    data, reason = broken_inputs()[name]
    with pytest.raises(ImageDecodeError) as raised:
        decode_image(data, source=name)
    assert name in str(raised.value)
    assert reason in str(raised.value)


def test_pixel_limit_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFECTLAB_MAX_PIXELS", "1000")
    with pytest.raises(ImageDecodeError, match="DEFECTLAB_MAX_PIXELS"):
        decode_image(encode(Image.new("L", (50, 50)), "PNG"), source="big.png")
