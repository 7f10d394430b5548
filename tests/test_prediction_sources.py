"""One prediction whatever form the image arrives in: path, bytes, base64, PIL image or RGB array."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.errors import InvalidInputError
from defectlab.prediction.predictor import to_pixels


def blue_part_with_red_spot() -> np.ndarray:
    pixels = np.zeros((128, 128, 3), dtype=np.uint8)
    pixels[..., 2] = 200
    pixels[60:70, 60:70] = (230, 20, 20)
    return pixels


def png_bytes(pixels: np.ndarray) -> bytes:
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, format="PNG")
    return stream.getvalue()


def test_every_form_gives_same_rgb_pixels(tmp_path: Path) -> None:
    pixels = blue_part_with_red_spot()
    path = tmp_path / "part.png"
    path.write_bytes(png_bytes(pixels))
    forms = {
        "path": path,
        "text path": str(path),
        "bytes": png_bytes(pixels),
        "base64": base64.b64encode(png_bytes(pixels)).decode("ascii"),
        "PIL image": Image.fromarray(pixels),
        "RGB array": pixels,
    }
    for name, source in forms.items():
        decoded = to_pixels(source)
        assert np.array_equal(decoded, pixels), name
        assert tuple(decoded[65, 65]) == (230, 20, 20), name


def test_rgba_pil_image_flattened_like_import() -> None:
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[5:15, 5:15] = (250, 0, 0, 255)
    from_pil = to_pixels(Image.fromarray(rgba, "RGBA"))
    stream = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(stream, format="PNG")
    assert np.array_equal(from_pil, to_pixels(stream.getvalue()))
    assert tuple(from_pil[0, 0]) == (0, 0, 0)


def test_16bit_pil_image_kept() -> None:
    pixels = np.full((16, 16), 1150, dtype=np.uint16)
    decoded = to_pixels(Image.fromarray(pixels))
    assert decoded.dtype == np.uint16
    assert int(decoded.max()) == 1150


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (np.zeros((4, 4, 4), dtype=np.uint8), "shape"),
        (np.zeros((4, 4), dtype=np.float32), "dtype"),
        ("not/a/file/nor base64!", "neither an existing file nor base64"),
        (3.5, "cannot be predicted"),
    ],
)
def test_invalid_sources_rejected(source: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        to_pixels(source)
