"""Turn mask files into boolean masks per class value, whatever values they were saved with.

Mask files come as {0, 255}, {0, 1}, {0, 240}, anti-aliased grey levels,
or class-index masks {0, 1, 2, ...}, sometimes saved as JPEG. The rules:

* A binary mask is read as defect where the value is at least half of its
  maximum, so {0, 255}, {0, 1} and {0, 240} give the same area.
* An index mask (three or more values, the largest at most
  ``MAX_INDEX_VALUE``, or at most the number of named classes) gives one
  mask per value. In a lossy file, each pixel is snapped to the nearest
  valid class value, so compression noise never becomes a new class.
* A JPEG mask is recognized by its content and reported as lossy.
* Masks are only ever resized with nearest-neighbour sampling, which keeps
  them binary.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from defectlab.errors import ImageDecodeError
from defectlab.formats._problems import ProblemLog, Reporter
from defectlab.images.decode import decode_image

__all__ = ["MAX_INDEX_VALUE", "MaskReading", "MaskValueSummary", "analyze_mask", "read_mask_file", "resize_mask"]

logger = logging.getLogger(__name__)

MAX_INDEX_VALUE = 32
"""Largest value read as a class index when there is no class list."""

# In a lossy mask, a value that fills no 3x3 block still counts as a level
# when it holds at least this fraction of the pixels of the most common
# non-zero value.
_LOSSY_LEVEL_FRACTION = 0.1

# JPEG noise can push an index mask's largest class value up by a few
# levels. With a class list, such values still mark an index mask.
_LOSSY_INDEX_MARGIN = 4

_LOSSY_FORMATS = {"JPEG", "MPO"}

MaskKind = Literal["empty", "binary", "index"]


@dataclass
class MaskReading:
    """Contents of one mask file.

    Attributes:
        layers: Class value to boolean ``(H, W)`` mask. A binary mask has the
            single key 1; an index mask has one key per class value found.
        values: Distinct values in the file, before thresholding or snapping.
        kind: ``"empty"`` (all zero), ``"binary"`` or ``"index"``.
        lossy: Whether the content is JPEG.
        size: ``(width, height)`` of the mask.
    """

    layers: dict[int, np.ndarray]
    values: tuple[int, ...]
    kind: MaskKind
    lossy: bool
    size: tuple[int, int]


def read_mask_file(path: Path, reporter: Reporter, *, class_count: int | None = None) -> MaskReading | None:
    """Decode a mask file and split it into class layers, reporting what was corrected.

    Args:
        path: The mask file, in any format ``decode_image`` reads.
        reporter: Where problems about this file go.
        class_count: Number of named defect classes for index masks, when a
            class list exists; values above it are not classes.

    Returns:
        The reading, or ``None`` when the file cannot be decoded (an error is reported).
    """
    try:
        decoded = decode_image(path.read_bytes(), source=reporter.path)
    except (ImageDecodeError, OSError) as error:
        reporter.error(f"mask could not be read ({error}); fix or remove the mask file")
        return None

    pixels = _to_single_channel(decoded.pixels, reporter)
    return analyze_mask(pixels, reporter, lossy=decoded.format in _LOSSY_FORMATS, class_count=class_count)


def analyze_mask(
    pixels: np.ndarray, reporter: Reporter, *, lossy: bool = False, class_count: int | None = None
) -> MaskReading:
    """Split a single-channel mask ``(H, W)`` into class layers; see the module rules."""
    counts = np.bincount(pixels.ravel().astype(np.int64))
    values = tuple(int(value) for value in np.flatnonzero(counts))
    size = (int(pixels.shape[1]), int(pixels.shape[0]))
    if values == (0,) or not values:
        return MaskReading({}, values, "empty", lossy, size)

    targets = _index_targets(_class_levels(pixels, counts, lossy=lossy), class_count, lossy=lossy)
    if targets is not None:
        layers = _snap_to_levels(pixels, targets, values, reporter, lossy=lossy)
        return MaskReading(layers, values, "index", lossy, size)

    maximum = values[-1]
    layer = pixels.astype(np.int64) * 2 >= maximum
    if lossy:
        reporter.warning(
            f"mask is stored as JPEG, which is lossy: {len(values)} distinct values found; "
            f"read as defect where the value is at least {maximum / 2:g} (half its maximum {maximum}). "
            "Save masks as PNG to keep them exact"
        )
    return MaskReading({1: layer}, values, "binary", lossy, size)


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a mask ``(H, W)`` to ``(height, width)`` with nearest-neighbour sampling only.

    Interpolating would create values between classes, so each output pixel
    takes the value of the source pixel under its centre.
    """
    source_height, source_width = mask.shape[:2]
    rows = np.minimum(((np.arange(height) + 0.5) * source_height / height).astype(np.int64), source_height - 1)
    columns = np.minimum(((np.arange(width) + 0.5) * source_width / width).astype(np.int64), source_width - 1)
    return mask[rows[:, None], columns[None, :]]


@dataclass
class MaskValueSummary:
    """Tally of the value sets found across a dataset's masks, reported once per import."""

    value_sets: Counter[tuple[int, ...]] = field(default_factory=Counter)
    grey_examples: list[str] = field(default_factory=list)
    grey_count: int = 0

    def add(self, mask_path: str, reading: MaskReading) -> None:
        """Count one mask; grey levels in a lossless file are remembered as examples."""
        if reading.kind == "empty":
            self.value_sets[reading.values] += 1
            return
        if reading.kind == "binary" and len(reading.values) > 2 and not reading.lossy:
            self.grey_count += 1
            if len(self.grey_examples) < 3:
                self.grey_examples.append(f"{mask_path} ({len(reading.values)} values)")
            return
        self.value_sets[reading.values] += 1

    def report(self, log: ProblemLog, root_label: str) -> None:
        """Log the tally and add one warning when the values are anything but plain {0, 255} or {0, 1}."""
        parts = [f"{_format_value_set(values)} in {count} mask(s)" for values, count in self.value_sets.most_common()]
        if self.grey_count:
            parts.append(f"grey levels in {self.grey_count} mask(s), for example {', '.join(self.grey_examples)}")
        if not parts:
            return
        text = "mask values found: " + "; ".join(parts)
        logger.info("%s: %s", root_label, text)

        non_empty = [values for values in self.value_sets if values != (0,)]
        plain = len(non_empty) <= 1 and all(values in ((0, 255), (0, 1)) for values in non_empty)
        if self.grey_count or not plain:
            log.warning(root_label, text + "; each binary mask is read as defect where the value is at least half its maximum")


def _to_single_channel(pixels: np.ndarray, reporter: Reporter) -> np.ndarray:
    if pixels.ndim == 2:
        return pixels
    if all(np.array_equal(pixels[..., 0], pixels[..., channel]) for channel in range(1, pixels.shape[2])):
        return pixels[..., 0]
    reporter.warning(
        "mask is in colour; read as the brightest channel of each pixel. Save masks as single-channel grayscale"
    )
    return pixels.max(axis=2)


def _class_levels(pixels: np.ndarray, counts: np.ndarray, *, lossy: bool) -> list[int]:
    """Return the values that are real levels of the mask, not compression noise."""
    present = np.flatnonzero(counts)
    if not lossy:
        return [int(value) for value in present]

    from scipy import ndimage  # imported here because SciPy is slow to load

    # JPEG noise sits along edges, so it rarely fills a 3x3 block. A real
    # class region does, and a region too small for that is caught by its count.
    flat = ndimage.minimum_filter(pixels, size=3) == ndimage.maximum_filter(pixels, size=3)
    levels = {0, *np.unique(pixels[flat]).tolist()}
    non_zero = counts[1:]
    if non_zero.any():
        floor = _LOSSY_LEVEL_FRACTION * non_zero.max()
        levels.update(int(value) for value in present if counts[value] >= floor)
    return _drop_after_gap(sorted(int(level) for level in levels))


def _drop_after_gap(levels: list[int]) -> list[int]:
    """Keep small levels only up to the first gap: class indices run 1, 2, 3 without holes.

    Heavy JPEG compression turns 8x8 blocks of an index mask into flat
    blocks of a wrong value, such as 4 in a {0, 1, 2} mask; a level past a
    gap is such a block, not a class. Levels above ``MAX_INDEX_VALUE``
    belong to binary masks and are kept.
    """
    small = [level for level in levels if 0 < level <= MAX_INDEX_VALUE]
    consecutive = [0]
    for level in small:
        if len(consecutive) > 1 and level != consecutive[-1] + 1:
            break
        consecutive.append(level)
    return consecutive + [level for level in levels if level > MAX_INDEX_VALUE]


def _index_targets(levels: list[int], class_count: int | None, *, lossy: bool) -> list[int] | None:
    """Return the class values to snap to, or ``None`` when the mask is binary."""
    top = max(levels)
    if class_count is not None:
        margin = _LOSSY_INDEX_MARGIN if lossy else 0
        return list(range(class_count + 1)) if top <= class_count + margin else None
    non_zero = [level for level in levels if level > 0]
    if len(non_zero) >= 2 and top <= MAX_INDEX_VALUE:
        return sorted({0, *non_zero})
    return None


def _snap_to_levels(
    pixels: np.ndarray, targets: list[int], values: tuple[int, ...], reporter: Reporter, *, lossy: bool
) -> dict[int, np.ndarray]:
    target_array = np.asarray(targets, dtype=np.int64)
    midpoints = (target_array[:-1] + target_array[1:]) / 2
    snapped = target_array[np.searchsorted(midpoints, pixels, side="left")]

    changed = int(np.count_nonzero(snapped != pixels))
    if changed:
        origin = "the JPEG (lossy) mask" if lossy else "the index mask"
        reporter.warning(
            f"{origin} holds values {_format_value_set(values)}; {changed} pixel(s) were snapped to the nearest "
            f"class value of {_format_value_set(tuple(targets))}. Save masks as PNG to keep them exact"
        )
    return {target: snapped == target for target in targets if target > 0 and np.any(snapped == target)}


def _format_value_set(values: tuple[int, ...]) -> str:
    if len(values) > 8:
        return f"{{{values[0]}, {values[1]}, ..., {values[-1]}}} ({len(values)} values)"
    return "{" + ", ".join(str(value) for value in values) + "}"
