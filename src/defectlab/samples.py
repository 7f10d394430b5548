"""Generated inspection images for the demo and the tests, when no real data is at hand.

The parts are grayscale surfaces with a soft texture; defects are thin
scratches and round spots, drawn into the image and into a mask of the same
size. Everything is seeded, so the same call writes the same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["DEFECT_KINDS", "draw_large_part", "draw_part", "write_class_folders"]

DEFECT_KINDS = ("scratch", "spot")


def draw_part(rng: np.random.Generator, *, size: int = 128, defect: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Draw one part surface, with a defect of kind ``defect`` when given.

    Returns:
        ``(pixels, mask)``: ``uint8`` ``(size, size)`` grey levels and a
        boolean ``(size, size)`` defect mask (all False for a good part).
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    texture = rng.normal(0.0, 6.0, (size, size)).astype(np.float32)
    shading = 12.0 * np.sin(xx / size * np.pi * rng.uniform(0.5, 1.5) + rng.uniform(0, np.pi))
    pixels = 120.0 + shading + texture
    mask = np.zeros((size, size), dtype=bool)
    if defect == "scratch":
        mask = _scratch_mask(rng, xx, yy, size)
        pixels[mask] -= 60.0
    elif defect == "spot":
        mask = _spot_mask(rng, xx, yy, size)
        pixels[mask] += 70.0
    elif defect is not None:
        raise ValueError(f"defect kind {defect!r} is not known; use one of {DEFECT_KINDS} or None")
    return np.clip(pixels, 0, 255).astype(np.uint8), mask


def _scratch_mask(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, size: int) -> np.ndarray:
    angle = rng.uniform(0, np.pi)
    cx, cy = rng.uniform(0.3 * size, 0.7 * size, 2)
    along = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    across = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    return (np.abs(across) < 1.5) & (np.abs(along) < rng.uniform(0.15, 0.3) * size)


def _spot_mask(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, size: int) -> np.ndarray:
    cx, cy = rng.uniform(0.2 * size, 0.8 * size, 2)
    radius = rng.uniform(0.04, 0.08) * size
    return (xx - cx) ** 2 + (yy - cy) ** 2 < radius**2


def draw_large_part(rng: np.random.Generator, height: int, width: int, pits: list[tuple[int, int]], *,
                    side: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Draw a large grayscale surface with a bright ``side`` x ``side`` pit at each ``(row, column)`` corner.

    Returns:
        ``(pixels, mask)``: ``uint8`` ``(height, width)`` grey levels and the
        boolean mask of the pits.
    """
    pixels = rng.normal(100.0, 8.0, (height, width)).astype(np.float32)
    period, phase = rng.uniform(0.1, 0.4) * width, rng.uniform(0, 2 * np.pi)
    pixels += 15.0 * np.sin(np.arange(width, dtype=np.float32) * (2 * np.pi / period) + phase)[None, :]
    pixels += np.linspace(0.0, rng.uniform(-20.0, 20.0), height, dtype=np.float32)[:, None]
    mask = np.zeros((height, width), dtype=bool)
    for row, column in pits:
        mask[row:row + side, column:column + side] = True
    pixels[mask] = 220.0
    return np.clip(pixels, 0, 255).astype(np.uint8), mask


def write_class_folders(root: Path, *, good: int = 60, per_defect: int = 15, size: int = 128,
                        seed: int = 0) -> Path:
    """Write ``root/good/*.png`` and ``root/<kind>/*.png`` with a ``*_mask.png`` beside each defect.

    Returns ``root``.
    """
    rng = np.random.default_rng(seed)
    counts = {"good": good, **{kind: per_defect for kind in DEFECT_KINDS}}
    for folder, count in counts.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            pixels, mask = draw_part(rng, size=size, defect=None if folder == "good" else folder)
            Image.fromarray(pixels).save(root / folder / f"{index:03d}.png")
            if folder != "good":
                Image.fromarray(mask.astype(np.uint8) * 255).save(root / folder / f"{index:03d}_mask.png")
    return root
