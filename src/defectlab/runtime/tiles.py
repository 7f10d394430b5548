"""Tiles: large images cut at native resolution, scored tile by tile, and stitched back to full size.

A defect of a few pixels disappears when a 5000 x 5000 image is shrunk to a
model's input, so such images are cut into tiles of the model's input size.
Tiles overlap by ``overlap`` pixels, and the last tile of each row and
column is aligned with the image's edge. So every pixel, the corners
included, lies in some tile, at least ``overlap / 2`` pixels from a cut
unless it lies on the image's own edge. An image smaller than a tile is
padded by repeating its edge pixels.

Stitching keeps, for every pixel, the result of the tile in which it lies
farthest from a cut (the tile's core), so no averaging buffer is needed:
the stitched result is the likeliest defect class (``uint8``) and the defect
probability (``float16``) per pixel, 3 bytes per pixel whatever the number
of classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["Stitched", "Tile", "cut_tile", "plan_tiles", "predict_tiled", "stitch_whole", "tile_origins"]

TileScorer = Callable[[list[np.ndarray]], list[np.ndarray]]
"""Maps tiles of pixels to class probabilities ``(C, tile height, tile width)``, class 0 being ``ok``."""


@dataclass(frozen=True)
class Tile:
    """One tile: its origin in the image and the core it writes when stitched (all in image pixels)."""

    y: int
    x: int
    core: tuple[int, int, int, int]
    """``(y_start, y_stop, x_start, x_stop)`` of the pixels this tile decides."""


@dataclass
class Stitched:
    """A full-size result: the likeliest defect class (index 1 or more) and the defect probability (1 - p(ok)) per pixel."""

    classes: np.ndarray
    defect: np.ndarray


def tile_origins(size: int, tile: int, overlap: int) -> list[int]:
    """Return the tile starts along one axis: every ``tile - overlap`` pixels, the last one flush with the edge."""
    if size <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return starts


def plan_tiles(height: int, width: int, tile: tuple[int, int], overlap: int) -> list[Tile]:
    """Return the tiles covering a ``height`` x ``width`` image, each with its core."""
    rows = _cores(tile_origins(height, tile[0], overlap), tile[0], height)
    columns = _cores(tile_origins(width, tile[1], overlap), tile[1], width)
    return [Tile(y, x, (y0, y1, x0, x1)) for y, (y0, y1) in rows for x, (x0, x1) in columns]


def _cores(starts: list[int], tile: int, size: int) -> list[tuple[int, tuple[int, int]]]:
    """Split the axis between neighbouring tiles halfway through their overlap."""
    cores = []
    for index, start in enumerate(starts):
        begin = 0 if index == 0 else (start + min(starts[index - 1] + tile, size)) // 2
        end = size if index == len(starts) - 1 else (starts[index + 1] + min(start + tile, size)) // 2
        cores.append((start, (begin, end)))
    return cores


def cut_tile(pixels: np.ndarray, y: int, x: int, tile: tuple[int, int]) -> np.ndarray:
    """Return the tile at ``(y, x)``, padded with the image's edge pixels where the image is smaller."""
    crop = pixels[y:y + tile[0], x:x + tile[1]]
    missing_y, missing_x = tile[0] - crop.shape[0], tile[1] - crop.shape[1]
    if missing_y or missing_x:
        padding = [(0, missing_y), (0, missing_x)] + [(0, 0)] * (crop.ndim - 2)
        crop = np.pad(crop, padding, mode="edge")
    return crop


def stitch_whole(probabilities: np.ndarray) -> Stitched:
    """Return the stitched form of one whole image's class probabilities ``(C, H, W)``."""
    spot = Tile(0, 0, (0, probabilities.shape[1], 0, probabilities.shape[2]))
    stitched = Stitched(np.zeros(probabilities.shape[1:], dtype=np.uint8),
                        np.zeros(probabilities.shape[1:], dtype=np.float16))
    _write_core(stitched, spot, probabilities)
    return stitched


def predict_tiled(pixels: np.ndarray, scorer: TileScorer, tile: tuple[int, int], overlap: int, *,
                  batch: int = 4) -> Stitched:
    """Score a whole image tile by tile and stitch the results to its full size.

    Memory is the stitched result (3 bytes a pixel) plus ``batch`` tiles and their scores.
    """
    height, width = pixels.shape[:2]
    stitched = Stitched(np.zeros((height, width), dtype=np.uint8), np.zeros((height, width), dtype=np.float16))
    for group in _groups(plan_tiles(height, width, tile, overlap), batch):
        scores = scorer([cut_tile(pixels, t.y, t.x, tile) for t in group])
        for spot, probabilities in zip(group, scores):
            _write_core(stitched, spot, probabilities)
    return stitched


def _groups(tiles: list[Tile], size: int) -> Iterator[list[Tile]]:
    for start in range(0, len(tiles), size):
        yield tiles[start:start + size]


def _write_core(stitched: Stitched, spot: Tile, probabilities: np.ndarray) -> None:
    y0, y1, x0, x1 = spot.core
    local = probabilities[:, y0 - spot.y:y1 - spot.y, x0 - spot.x:x1 - spot.x]
    stitched.classes[y0:y1, x0:x1] = (1 + np.argmax(local[1:], axis=0)).astype(np.uint8)
    stitched.defect[y0:y1, x0:x1] = (1.0 - local[0]).astype(np.float16)
