"""Turn stored pixels into 8-bit pictures a person can look at.

Inspection cameras often deliver 12- or 16-bit grayscale whose useful range
covers a few hundred grey levels. Divided down to 8 bits by the full range,
such an image is a flat dark grey. ``to_display`` therefore stretches a
contrast window taken from the image's own intensities.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw

from defectlab.errors import InvalidInputError

__all__ = ["FLAT_GREY", "WINDOW_PERCENTILES", "outline_boxes", "overlay_heatmap", "to_display", "to_thumbnail"]

WINDOW_PERCENTILES = (0.5, 99.5)
"""Percentiles of a 16-bit image's intensities mapped to black and white.

Clipping half a percent at each end keeps a few hot or dead pixels from
setting the window.
"""

FLAT_GREY = 128
"""Grey level shown for a 16-bit image whose intensities are all equal."""

HEATMAP_COLORMAP = "turbo"
"""Matplotlib colormap of heatmaps. Its dark red top contrasts with bright defects."""

HEATMAP_MAX_OPACITY = 0.65
"""Opacity of the heatmap colour where the heatmap reaches its upper limit."""


def to_display(pixels: np.ndarray) -> np.ndarray:
    """Convert pixels to an 8-bit view.

    ``uint8`` pixels are returned unchanged. ``uint16`` pixels are stretched so
    that the ``WINDOW_PERCENTILES`` of their intensities map to 0 and 255,
    clipping outside. For RGB the window is shared by the three channels so
    that colours keep their balance. A flat image becomes ``FLAT_GREY``.

    Args:
        pixels: ``(H, W)`` or ``(H, W, 3)``, dtype ``uint8`` or ``uint16``.

    Returns:
        ``uint8`` array of the same shape.

    Raises:
        InvalidInputError: When the shape or dtype is not one of the above.
    """
    _check_pixels(pixels)
    if pixels.dtype == np.uint8:
        return pixels

    low, high = np.percentile(pixels, WINDOW_PERCENTILES)
    if high <= low:
        return np.full(pixels.shape, FLAT_GREY, dtype=np.uint8)
    stretched = (pixels.astype(np.float32) - low) * (255.0 / (high - low))
    return np.clip(np.rint(stretched), 0, 255).astype(np.uint8)


def outline_boxes(view: np.ndarray, size: tuple[int, int], labeled: list[list[float]],
                  predicted: list[list[float]]) -> np.ndarray:
    """Draw labeled boxes in green and predicted boxes in red over a view of an image of ``size`` ``(H, W)``.

    Boxes are in the image's pixels and are scaled to the view; each
    outline is at least one view pixel wide, so a 4-pixel defect on a large
    image stays visible.
    """
    canvas = Image.fromarray(view).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    scale_y, scale_x = view.shape[0] / size[0], view.shape[1] / size[1]
    for boxes, colour in ((labeled, (40, 200, 80)), (predicted, (230, 40, 40))):
        for x0, y0, x1, y1 in boxes:
            corners = [x0 * scale_x - 1, y0 * scale_y - 1, max(x1 * scale_x, x0 * scale_x + 1),
                       max(y1 * scale_y, y0 * scale_y + 1)]
            draw.rectangle(corners, outline=colour, width=1)
    return np.asarray(canvas)


def to_thumbnail(view: np.ndarray, *, max_side: int = 160) -> np.ndarray:
    """Shrink an 8-bit view so that its longer side is at most ``max_side``.

    Images already small enough are returned unchanged, never enlarged.

    Args:
        view: ``(H, W)`` or ``(H, W, 3)`` ``uint8``, for example from
            ``to_display``.
        max_side: Maximum length of the longer side, in pixels, at least 1.

    Returns:
        ``uint8`` array with the aspect ratio of ``view``, each side at least 1.
    """
    if max_side < 1:
        raise InvalidInputError(f"max_side must be at least 1 pixel, got {max_side}.")
    height, width = view.shape[:2]
    if max(height, width) <= max_side:
        return view

    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(view).resize(size, Image.Resampling.LANCZOS))


def overlay_heatmap(view: np.ndarray, heatmap: np.ndarray, *, low: float, high: float) -> np.ndarray:
    """Blend a heatmap in colour over an 8-bit view.

    The heatmap is resized to the view when their sizes differ, so a
    thumbnail can take the full-size heatmap. Values at or below ``low`` leave
    the view as it is. The colour grows more opaque up to
    ``HEATMAP_MAX_OPACITY`` at ``high``. Pass the same limits for every image
    of a report so equal colours mean equal scores.

    Args:
        view: ``(H, W)`` or ``(H, W, 3)`` ``uint8``.
        heatmap: ``(h, w)`` finite per-pixel defect scores of the same image.
        low: Heatmap value shown without colour.
        high: Heatmap value shown in full colour, greater than ``low``.

    Returns:
        ``(H, W, 3)`` ``uint8``.

    Raises:
        InvalidInputError: When ``heatmap`` is not two-dimensional or not
            finite, or when ``high`` is not greater than ``low``.
    """
    _check_heatmap(heatmap)
    if not high > low:
        raise InvalidInputError(f"high must be greater than low, got low={low}, high={high}.")

    height, width = view.shape[:2]
    scaled = _resize_float(heatmap.astype(np.float32), height, width)
    strength = np.clip((scaled - low) / (high - low), 0.0, 1.0)[..., np.newaxis]
    colour = colormaps[HEATMAP_COLORMAP](strength[..., 0])[..., :3] * 255.0
    base = np.repeat(view[..., np.newaxis], 3, axis=2) if view.ndim == 2 else view
    opacity = HEATMAP_MAX_OPACITY * strength
    blended = base.astype(np.float32) * (1.0 - opacity) + colour * opacity
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _check_pixels(pixels: np.ndarray) -> None:
    if pixels.dtype not in (np.uint8, np.uint16):
        raise InvalidInputError(
            f"pixels must be uint8 or uint16, got {pixels.dtype}; "
            "pass the pixels of a decoded image without converting them."
        )
    if pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3):
        return
    raise InvalidInputError(
        f"pixels must have shape (H, W) or (H, W, 3), got {pixels.shape}; "
        "flatten alpha and convert other channel counts first."
    )


def _check_heatmap(heatmap: np.ndarray) -> None:
    if heatmap.ndim != 2:
        raise InvalidInputError(f"heatmap must have shape (H, W), got {heatmap.shape}.")
    if not np.isfinite(heatmap).all():
        raise InvalidInputError("heatmap contains NaN or infinite values; replace them before display.")


def _resize_float(values: np.ndarray, height: int, width: int) -> np.ndarray:
    if values.shape == (height, width):
        return values
    return np.asarray(Image.fromarray(values).resize((width, height), Image.Resampling.BILINEAR))
