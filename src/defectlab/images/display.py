"""8-bit views of stored pixels for people: an automatic contrast window, thumbnails and deep-zoom tiles.

A 16-bit image whose useful range spans a few hundred grey levels, or an
8-bit image that uses a narrow band of grey, looks flat when shown as it is.
Views therefore map a window of the image's own intensities to 0..255. The
stored pixels never change, and training reads them as they are.

Deep zoom cuts the view into square tiles at level 0 (full resolution) and at
levels 1, 2, ... (each half the size of the one before), so a viewer fetches
only the tiles on screen at the resolution of the screen.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from defectlab.errors import NotFoundError

__all__ = ["LOW_CONTRAST_SPAN", "TILE_SIZE", "WINDOW_PERCENTILES", "TilePyramid", "contrast_window", "encode_png",
           "thumbnail", "to_view"]

WINDOW_PERCENTILES = (0.5, 99.5)
"""Percentiles of the intensities mapped to black and white. Clipping half a percent at each end keeps a few
hot or dead pixels from setting the window."""

LOW_CONTRAST_SPAN = 96
"""An 8-bit image whose window spans fewer grey levels than this is stretched; a wider one is shown as it is."""

TILE_SIZE = 256
"""Side of a deep-zoom tile in pixels; the last tile of a row or column is smaller."""

_ROWS_PER_BLOCK = 512

_WINDOW_SAMPLE = 1 << 20
"""Most pixels read to find the window, taken on a regular grid, so an 8000x8000 image costs no more than
a 1024x1024 one."""


def contrast_window(pixels: np.ndarray) -> tuple[float, float]:
    """Return the ``(low, high)`` intensities that a view maps to 0 and 255.

    ``uint16`` images get the ``WINDOW_PERCENTILES`` of their intensities.
    ``uint8`` images get them only when they span fewer than
    ``LOW_CONTRAST_SPAN`` grey levels, else ``(0, 255)``. For RGB the window
    is shared by the three channels so that colours keep their balance. A flat
    image gets a window one level wide around its value.
    """
    step = max(1, int(np.sqrt(pixels.shape[0] * pixels.shape[1] / _WINDOW_SAMPLE)))
    low, high = (float(v) for v in np.percentile(pixels[::step, ::step], WINDOW_PERCENTILES))
    if pixels.dtype == np.uint8 and high - low >= LOW_CONTRAST_SPAN:
        return 0.0, 255.0
    if high <= low:
        return low - 0.5, low + 0.5
    return low, high


def to_view(pixels: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Map ``pixels`` (``(H, W)`` or ``(H, W, 3)``, ``uint8`` or ``uint16``) through ``window`` to ``uint8``."""
    low, high = window
    if pixels.dtype == np.uint8 and (low, high) == (0.0, 255.0):
        return pixels
    scale = 255.0 / (high - low)
    view = np.empty(pixels.shape, dtype=np.uint8)
    # Row blocks keep the float copy small: a whole 8000x8000 image in float32 would take 256 MB.
    for top in range(0, pixels.shape[0], _ROWS_PER_BLOCK):
        block = (pixels[top:top + _ROWS_PER_BLOCK].astype(np.float32) - low) * scale
        view[top:top + _ROWS_PER_BLOCK] = np.clip(np.rint(block), 0, 255)
    return view


def thumbnail(view: np.ndarray, size: int) -> np.ndarray:
    """Shrink an 8-bit view so its longer side is at most ``size`` pixels; never enlarge it."""
    height, width = view.shape[:2]
    if max(height, width) <= size:
        return view
    scale = size / max(height, width)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    picture = Image.fromarray(view)
    # A box reduction first brings a large image close to the target cheaply; Lanczos then keeps edges sharp.
    factor = max(1, int(min(width / target[0], height / target[1]) // 2))
    if factor > 1:
        picture = picture.reduce(factor)
    return np.asarray(picture.resize(target, Image.Resampling.LANCZOS))


def encode_png(view: np.ndarray) -> bytes:
    stream = io.BytesIO()
    Image.fromarray(view).save(stream, format="PNG", compress_level=1)
    return stream.getvalue()


class TilePyramid:
    """Deep-zoom tiles of one 8-bit view; the halved levels are computed on first use and kept.

    Args:
        view: ``(H, W)`` or ``(H, W, 3)`` ``uint8``, at full resolution.
    """

    def __init__(self, view: np.ndarray) -> None:
        self.width, self.height = int(view.shape[1]), int(view.shape[0])
        self.levels = 1 + max(0, int(np.ceil(np.log2(max(self.width, self.height) / TILE_SIZE))))
        self._levels: dict[int, np.ndarray] = {0: view}

    def describe(self) -> dict[str, int]:
        """Return ``width``, ``height``, ``tile_size`` and ``levels``: the view of level ``k`` is
        ``ceil(width / 2**k)`` by ``ceil(height / 2**k)`` pixels, the last level fits one tile."""
        return {"width": self.width, "height": self.height, "tile_size": TILE_SIZE, "levels": self.levels}

    def tile(self, level: int, column: int, row: int) -> np.ndarray:
        """Return the tile at ``column``, ``row`` of ``level``: up to ``TILE_SIZE`` pixels square.

        Raises:
            NotFoundError: The level, column or row lies outside the pyramid.
        """
        if not 0 <= level < self.levels:
            raise NotFoundError(f"tile level {level} does not exist; this image has levels 0 to {self.levels - 1}")
        view = self._level(level)
        columns, rows = -(-view.shape[1] // TILE_SIZE), -(-view.shape[0] // TILE_SIZE)
        if not (0 <= column < columns and 0 <= row < rows):
            raise NotFoundError(f"tile {column},{row} does not exist at level {level}; columns are 0 to "
                                f"{columns - 1} and rows 0 to {rows - 1}")
        top, left = row * TILE_SIZE, column * TILE_SIZE
        return view[top:top + TILE_SIZE, left:left + TILE_SIZE]

    def _level(self, level: int) -> np.ndarray:
        if level not in self._levels:
            finer = self._level(level - 1)
            height, width = finer.shape[:2]
            size = (max(1, -(-width // 2)), max(1, -(-height // 2)))
            self._levels[level] = np.asarray(Image.fromarray(finer).resize(size, Image.Resampling.BOX))
        return self._levels[level]

