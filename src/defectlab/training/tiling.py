"""Whether to work on tiles at native resolution, and which tiles to train on.

Shrinking a large image to a model's input erases small defects. So the
model works on tiles of its input size, cut at native resolution, when two
things hold: the typical image must shrink by more than ``MAX_SHRINK`` per
side to fit the input, and the smallest labeled defect would then be
narrower than ``MIN_DEFECT_PIXELS``. Projects without labeled regions tile when the images
must shrink by more than ``MAX_SHRINK_UNLABELED``, because nothing tells
how small their defects are.

Training samples tiles in a balanced way: one tile around each labeled
defect (placed at random so the defect is not always centred) and as many
tiles drawn anywhere else, so a model sees both defects and plain surface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from defectlab.runtime.tiles import cut_tile

__all__ = ["MAX_SHRINK", "MIN_DEFECT_PIXELS", "TilingChoice", "choose_tiling", "defect_widths", "sample_tiles"]

MAX_SHRINK = 2.0
"""Images that shrink by at most this factor per side are resized whole."""

MAX_SHRINK_UNLABELED = 4.0
"""The same limit for projects whose defects have no labeled regions."""

MIN_DEFECT_PIXELS = 4.0
"""Narrowest a defect may become after resizing; at stride 8 it then still covers half a feature cell."""

OVERLAP_SHARE = 0.125
"""Tiles overlap by this share of their side."""

TILE_SIDE = 320
"""Longest tile side: a tile is the model input, capped here so that training sees many small tiles."""


@dataclass(frozen=True)
class TilingChoice:
    """Whether to tile, the tile size and overlap, and why, in words."""

    tile: tuple[int, int] | None
    overlap: int
    reason: str


def choose_tiling(sizes: Sequence[tuple[int, int]], defect_widths: Sequence[float],
                  input_size: tuple[int, int]) -> TilingChoice:
    """Decide from the images' ``(height, width)``, their labeled defects' narrower sides and the model input."""
    if not sizes:
        return TilingChoice(None, 0, "no images to measure")
    height = float(np.median([size[0] for size in sizes]))
    width = float(np.median([size[1] for size in sizes]))
    shrink = max(height / input_size[0], width / input_size[1])
    tile = (min(input_size[0], TILE_SIDE), min(input_size[1], TILE_SIDE))
    overlap = int(round(OVERLAP_SHARE * min(tile)))
    if defect_widths:
        smallest = float(np.percentile(defect_widths, 5))
        if shrink > MAX_SHRINK and smallest / shrink < MIN_DEFECT_PIXELS:
            return TilingChoice(tile, overlap, (
                f"images of {width:.0f} x {height:.0f} px would shrink {shrink:.1f} times to fit the "
                f"{input_size[1]} x {input_size[0]} px input, and the smallest defects ({smallest:.0f} px wide) "
                f"would vanish, so the model works on {tile[1]} x {tile[0]} px tiles at native resolution"))
        return TilingChoice(None, 0, f"defects stay visible when images shrink {shrink:.1f} times, so whole "
                                     "images are used")
    if shrink > MAX_SHRINK_UNLABELED:
        return TilingChoice(tile, overlap, (
            f"images of {width:.0f} x {height:.0f} px would shrink {shrink:.1f} times to fit the input, "
            f"so the model works on {tile[1]} x {tile[0]} px tiles at native resolution"))
    return TilingChoice(None, 0, f"images shrink {shrink:.1f} times to fit the input, so whole images are used")


def defect_widths(class_map: np.ndarray) -> list[float]:
    """Return the narrower side of each labeled defect's box in a class map (0 is no defect)."""
    labeled, count = ndimage.label(class_map > 0)
    widths = []
    for where in ndimage.find_objects(labeled):
        widths.append(float(min(where[0].stop - where[0].start, where[1].stop - where[1].start)))
    return widths


def sample_tiles(pixels: np.ndarray, class_map: np.ndarray, tile: tuple[int, int],
                 rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return tiles of one image and of its class map: one around each defect and as many elsewhere (at least one)."""
    height, width = class_map.shape
    labeled, count = ndimage.label(class_map > 0)
    origins = [_around(where, tile, height, width, rng) for where in ndimage.find_objects(labeled)]
    for _ in range(max(1, count)):
        origins.append((int(rng.integers(0, max(1, height - tile[0] + 1))),
                        int(rng.integers(0, max(1, width - tile[1] + 1)))))
    tiles = [cut_tile(pixels, y, x, tile) for y, x in origins]
    maps = [cut_tile(class_map, y, x, tile) for y, x in origins]
    return tiles, maps


def _around(where: tuple[slice, slice], tile: tuple[int, int], height: int, width: int,
            rng: np.random.Generator) -> tuple[int, int]:
    """Return a tile origin that puts the defect somewhere inside the tile (all of it, when it fits)."""
    origin = []
    for axis, size in ((0, height), (1, width)):
        start, stop = where[axis].start, where[axis].stop
        low = max(0, min(stop - tile[axis], size - tile[axis]))
        high = max(low, min(start, size - tile[axis]))
        origin.append(int(rng.integers(low, high + 1)))
    return origin[0], origin[1]
