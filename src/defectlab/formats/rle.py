"""COCO run-length encoding (RLE) of binary masks.

COCO flattens a ``(height, width)`` mask in column-major (Fortran) order and
stores the lengths of alternating runs, starting with a run of zeros that
may be empty. ``{"size": [height, width], "counts": [...]}`` is the
uncompressed form. The compressed form stores the same counts as a string.
From the fourth count on, each count is written as its difference from the
count two places before. Every number is split into 5-bit groups, least
significant first, and each group is written as ``chr(48 + group)``. Bit
``0x20`` is set while more groups follow, and bit ``0x10`` of the last group
carries the sign. The tests check this codec against pycocotools.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from defectlab.errors import InvalidInputError

__all__ = ["counts_from_string", "counts_to_string", "decode_rle", "encode_rle", "mask_to_counts"]


def decode_rle(rle: Mapping[str, Any]) -> np.ndarray:
    """Decode a COCO RLE, compressed or not, into a mask.

    Args:
        rle: ``{"size": [height, width], "counts": list[int] | str}``.

    Returns:
        Boolean array of shape ``(height, width)``.

    Raises:
        InvalidInputError: The size or counts are malformed, or the runs do
            not add up to ``height * width``.
    """
    height, width = _read_size(rle)
    counts = _read_counts(rle.get("counts"))

    total = sum(counts)
    if total != height * width:
        raise InvalidInputError(
            f"RLE runs add up to {total} pixels, but size {height}x{width} (height x width) has "
            f"{height * width}; check that 'size' is [height, width] and the counts belong to this mask"
        )
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape((width, height)).T.copy()


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode a ``(height, width)`` mask as a compressed COCO RLE with a string ``counts``."""
    height, width = _mask_shape(mask)
    return {"size": [height, width], "counts": counts_to_string(mask_to_counts(mask))}


def mask_to_counts(mask: np.ndarray) -> list[int]:
    """Return the uncompressed COCO counts of a ``(height, width)`` mask, column-major, zeros first."""
    _mask_shape(mask)
    flat = np.asarray(mask, dtype=bool).T.reshape(-1)
    if flat.size == 0:
        return [0]

    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(edges).tolist()
    if flat[0]:
        counts.insert(0, 0)
    return [int(count) for count in counts]


def counts_to_string(counts: Sequence[int]) -> str:
    """Compress uncompressed COCO counts into the COCO RLE string."""
    characters: list[str] = []
    for index, count in enumerate(counts):
        value = int(count) - int(counts[index - 2]) if index > 2 else int(count)
        characters.extend(_encode_number(value))
    return "".join(characters)


def counts_from_string(text: str) -> list[int]:
    """Expand a COCO RLE string into uncompressed counts.

    Raises:
        InvalidInputError: A character is outside the codec's range or the
            string ends inside a number.
    """
    counts: list[int] = []
    position = 0
    while position < len(text):
        value, position = _decode_number(text, position)
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def _encode_number(value: int) -> list[str]:
    characters = []
    more = True
    while more:
        group = value & 0x1F
        value >>= 5  # arithmetic shift, so a negative number ends at -1
        more = value != -1 if group & 0x10 else value != 0
        if more:
            group |= 0x20
        characters.append(chr(group + 48))
    return characters


def _decode_number(text: str, position: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if position >= len(text):
            raise InvalidInputError("the RLE string ends in the middle of a number; the counts are cut short")
        group = ord(text[position]) - 48
        if not 0 <= group < 64:
            raise InvalidInputError(
                f"the RLE string contains {text[position]!r}, outside the COCO codec's characters '0' to 'o'"
            )
        value |= (group & 0x1F) << shift
        position += 1
        shift += 5
        if not group & 0x20:
            if group & 0x10:
                value -= 1 << shift
            return value, position


def _read_size(rle: Mapping[str, Any]) -> tuple[int, int]:
    size = rle.get("size")
    valid = (
        isinstance(size, (list, tuple))
        and len(size) == 2
        and all(isinstance(value, int) and not isinstance(value, bool) and value >= 0 for value in size)
    )
    if not valid:
        raise InvalidInputError(f"RLE 'size' is {size!r}; expected [height, width] as two whole numbers")
    return int(size[0]), int(size[1])


def _read_counts(counts: object) -> list[int]:
    if isinstance(counts, str):
        values = counts_from_string(counts)
    elif isinstance(counts, (bytes, bytearray)):
        values = counts_from_string(counts.decode("ascii", errors="replace"))
    elif isinstance(counts, list) and all(isinstance(value, int) and not isinstance(value, bool) for value in counts):
        values = list(counts)
    else:
        raise InvalidInputError(
            f"RLE 'counts' is of type {type(counts).__name__}; expected a list of whole numbers or a COCO RLE string"
        )
    negative = [value for value in values if value < 0]
    if negative:
        raise InvalidInputError(f"RLE counts contain negative run lengths {negative[:5]}; the counts are corrupt")
    return values


def _mask_shape(mask: np.ndarray) -> tuple[int, int]:
    if mask.ndim != 2:
        raise InvalidInputError(f"a mask must be 2-D (height, width); got shape {mask.shape}")
    return int(mask.shape[0]), int(mask.shape[1])
