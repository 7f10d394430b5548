"""Near-duplicate images: the same part re-encoded, resized or photographed at another exposure.

Two images are near duplicates when the fine structure of their 32 x 32
thumbnails (the thumbnail minus its 5 x 5 blur, zero mean, unit length) has a
correlation distance below ``NEAR_DISTANCE``. Brightness changes do not move
this structure, and neither does re-encoding or resizing much, while two
different parts of the same kind differ in it. Crops of more than a pixel or
two are not found this way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = ["NEAR_DISTANCE", "copy_distances", "group_near_duplicates", "near_pairs", "thumbnail"]

NEAR_DISTANCE = 0.05
"""Thumbnail correlation distance below which two images count as near duplicates.

On magnetic-tile images, JPEG re-encoding at quality 70 moved copies up to 0.007
and resizing to 80 % up to 0.018. Smoother parts with less fine texture move
further: 0.04 for a generated 256 x 256 part saved as JPEG at quality 80.
"""

_SIDE = 32


def thumbnail(pixels: np.ndarray) -> np.ndarray:
    """Return the image's fine structure at 32 x 32, float64 ``(1024,)``, zero mean and unit length."""
    plane = pixels.astype(np.float32) / float(np.iinfo(pixels.dtype).max)
    if plane.ndim == 3:
        plane = plane.mean(axis=2)
    small = np.asarray(Image.fromarray(plane).resize((_SIDE, _SIDE), Image.Resampling.BOX), dtype=np.float64)
    padded = np.pad(small, 2, mode="edge")
    blurred = sum(padded[i:i + _SIDE, j:j + _SIDE] for i in range(5) for j in range(5)) / 25.0
    detail = (small - blurred).ravel()
    detail -= detail.mean()
    return detail / max(float(np.linalg.norm(detail)), 1e-9)


def copy_distances(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Return the correlation distance of each thumbnail in ``first`` to each in ``second``, ``(N, M)``.

    Distances below ``NEAR_DISTANCE`` mark near duplicates.
    """
    return 1.0 - np.asarray(first, dtype=np.float64) @ np.asarray(second, dtype=np.float64).T


def near_pairs(thumbnails: np.ndarray, chunk: int = 1024) -> list[tuple[float, int, int]]:
    """Return ``(distance, i, j)`` with ``i < j`` for thumbnails closer than ``NEAR_DISTANCE``, in blocks of rows."""
    pairs = []
    for start in range(0, len(thumbnails), chunk):
        distances = copy_distances(thumbnails[start:start + chunk], thumbnails)
        rows, columns = np.where(distances < NEAR_DISTANCE)
        pairs.extend((float(distances[r, c]), start + int(r), int(c)) for r, c in zip(rows, columns) if c > start + r)
    return pairs


def group_near_duplicates(images: Sequence[np.ndarray]) -> list[int]:
    """Return a group number per image: near duplicates, directly or through a chain, share one.

    Each group is numbered by its first image's index, so single images keep their own index.
    """
    parent = list(range(len(images)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    if len(images) > 1:
        for _, first, second in near_pairs(np.stack([thumbnail(images[i]) for i in range(len(images))])):
            low, high = sorted((root(first), root(second)))
            parent[high] = low
    return [root(index) for index in range(len(images))]
