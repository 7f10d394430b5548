"""Bring reader regions into displayed-pixel coordinates and check them against the decoded image."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image as PILImage

from defectlab.formats.records import Problem, Region

__all__ = ["MASK_ASPECT_TOLERANCE", "fit_region", "mask_to_png", "png_to_mask"]

MASK_ASPECT_TOLERANCE = 0.01
"""Largest relative difference between a mask's and its image's width-to-height ratio that is still resized."""


def fit_region(region: Region, *, width: int, height: int, path: str) -> tuple[Region | None, list[Problem]]:
    """Scale a region to pixels of a ``width`` x ``height`` image and clip it.

    Returns the region (``None`` when it cannot be kept) and the problems found.
    A mask of another size with the same aspect ratio (within
    ``MASK_ASPECT_TOLERANCE``) is resized with nearest neighbour only, so no
    new mask value appears. A mask of another aspect ratio is rejected,
    because it almost surely belongs to another image.
    """
    if region.kind == "mask":
        return _fit_mask(region, width=width, height=height, path=path)
    scale = (width, height) if region.normalized else (1.0, 1.0)
    if region.kind == "box":
        return _fit_box(region, scale, width=width, height=height, path=path)
    return _fit_polygon(region, scale, width=width, height=height, path=path)


def _fit_box(region: Region, scale: tuple[float, float], *, width: int, height: int, path: str):
    x0, y0, x1, y1 = region.box
    sx, sy = scale
    box = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
    clipped = (
        min(max(box[0], 0.0), width),
        min(max(box[1], 0.0), height),
        min(max(box[2], 0.0), width),
        min(max(box[3], 0.0), height),
    )
    problems = []
    if clipped != box:
        problems.append(
            Problem(path, f"box {_format(box)} of class {region.class_name!r} reaches outside the "
                    f"{width}x{height} image and was clipped to {_format(clipped)}", "warning")
        )
    if clipped[2] - clipped[0] <= 0 or clipped[3] - clipped[1] <= 0:
        problems.append(Problem(path, f"box {_format(box)} of class {region.class_name!r} has no area inside "
                                f"the {width}x{height} image and was not imported"))
        return None, problems
    return Region("box", region.class_name, box=clipped), problems


def _fit_polygon(region: Region, scale: tuple[float, float], *, width: int, height: int, path: str):
    sx, sy = scale
    points = np.asarray(region.polygon, dtype=np.float64).reshape(-1, 2) * (sx, sy)
    clipped = np.clip(points, 0.0, (width, height))
    problems = []
    if not np.allclose(clipped, points):
        problems.append(Problem(path, f"polygon of class {region.class_name!r} reaches outside the "
                                f"{width}x{height} image and was clipped to it", "warning"))
    if _polygon_area(clipped) <= 0.0:
        problems.append(Problem(path, f"polygon of class {region.class_name!r} has no area inside the image "
                                "and was not imported"))
        return None, problems
    return Region("polygon", region.class_name, polygon=[float(v) for v in clipped.ravel()]), problems


def _fit_mask(region: Region, *, width: int, height: int, path: str):
    mask = np.asarray(region.mask, dtype=bool)
    problems = []
    if mask.shape != (height, width):
        mask_width, mask_height = mask.shape[1], mask.shape[0]
        if not _same_aspect_ratio((mask_width, mask_height), (width, height)):
            problems.append(Problem(
                path, f"mask of class {region.class_name!r} is {mask_width}x{mask_height} but the image is "
                f"{width}x{height}, another aspect ratio, so it is most likely the mask of another image; "
                "mask not imported. Pair the image with its own mask",
            ))
            return None, problems
        problems.append(Problem(path, f"mask of class {region.class_name!r} is {mask_width}x{mask_height} "
                                f"but the image is {width}x{height}; it was resized with nearest neighbour",
                                "warning"))
        resized = PILImage.fromarray(mask.astype(np.uint8) * 255).resize((width, height), PILImage.NEAREST)
        mask = np.asarray(resized) > 0
    if not mask.any():
        return None, problems
    return Region("mask", region.class_name, mask=mask), problems


def _same_aspect_ratio(first: tuple[int, int], second: tuple[int, int]) -> bool:
    ratio = (first[0] / first[1]) / (second[0] / second[1])
    return abs(ratio - 1.0) <= MASK_ASPECT_TOLERANCE


def _polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _format(box: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{value:.1f}" for value in box) + "]"


def mask_to_png(mask: np.ndarray) -> bytes:
    """Encode a boolean ``(H, W)`` mask as an 8-bit PNG valued 0 and 255."""
    stream = io.BytesIO()
    PILImage.fromarray(np.asarray(mask, dtype=np.uint8) * 255).save(stream, format="PNG")
    return stream.getvalue()


def png_to_mask(data: bytes) -> np.ndarray:
    """Decode a mask PNG written by ``mask_to_png`` into a boolean ``(H, W)`` array."""
    return np.asarray(PILImage.open(io.BytesIO(data)).convert("L")) > 0
