"""Simple per-image statistics that reveal imaging changes: brightness, contrast, sharpness and size."""

from __future__ import annotations

import numpy as np

__all__ = ["STATISTICS", "image_statistics"]

STATISTICS = ("brightness", "contrast", "sharpness", "width", "height")
"""Names of the values ``image_statistics`` returns."""

_MAX_SIDE = 1024
"""Larger images are subsampled to about this side first, which bounds the cost."""


def image_statistics(pixels: np.ndarray) -> dict[str, float]:
    """Return brightness, contrast and sharpness on a 0..1 intensity scale, and the size in pixels.

    Brightness is the mean intensity, contrast its standard deviation, and
    sharpness the mean absolute Laplacian (a blurred or defocused image scores
    lower). Intensities are divided by the pixel type's maximum (255 or 65535).

    Args:
        pixels: ``(H, W)`` or ``(H, W, 3)``, uint8 or uint16, as ``decode_image`` returns them.
    """
    height, width = pixels.shape[:2]
    step = max(1, int(np.ceil(max(height, width) / _MAX_SIDE)))
    plane = pixels[::step, ::step].astype(np.float32)
    if plane.ndim == 3:
        plane = plane.mean(axis=2)
    plane /= float(np.iinfo(pixels.dtype).max)
    laplacian = np.zeros(0, dtype=np.float32)
    if min(plane.shape) >= 3:
        laplacian = (plane[1:-1, :-2] + plane[1:-1, 2:] + plane[:-2, 1:-1] + plane[2:, 1:-1] - 4 * plane[1:-1, 1:-1])
    return {
        "brightness": round(float(plane.mean()), 6),
        "contrast": round(float(plane.std()), 6),
        "sharpness": round(float(np.abs(laplacian).mean()) if laplacian.size else 0.0, 6),
        "width": float(width),
        "height": float(height),
    }
