"""COCO RLE codec: column-major order, both count forms, rejected run totals."""

from __future__ import annotations

import numpy as np
import pytest

from defectlab.errors import InvalidInputError
from defectlab.formats.rle import counts_from_string, counts_to_string, decode_rle, encode_rle, mask_to_counts


def test_uncompressed_rle_is_column_major() -> None:
    mask = decode_rle({"counts": [0, 20, 30], "size": [10, 5]})

    assert mask.shape == (10, 5)
    assert mask[:, :2].all()
    assert not mask[:, 2:].any()


def test_compressed_and_uncompressed_forms_agree() -> None:
    text = counts_to_string([0, 20, 30])

    from_string = decode_rle({"counts": text, "size": [10, 5]})
    from_list = decode_rle({"counts": [0, 20, 30], "size": [10, 5]})

    assert np.array_equal(from_string, from_list)


@pytest.mark.parametrize(
    ("counts", "size"),
    [([0, 20, 29], [10, 5]), ([0, 20, 31], [10, 5]), ([5], [2, 2])],
)
def test_runs_not_summing_to_pixels_are_rejected(counts: list[int], size: list[int]) -> None:
    with pytest.raises(InvalidInputError, match="add up to"):
        decode_rle({"counts": counts, "size": size})


@pytest.mark.parametrize(
    "rle",
    [
        {"counts": [0, 4], "size": [2]},
        {"counts": [0, 4], "size": ["2", "2"]},
        {"counts": {"a": 1}, "size": [2, 2]},
        {"counts": [0, -1, 5], "size": [2, 2]},
        {"counts": "\x7f", "size": [2, 2]},
    ],
)
def test_malformed_rle_is_rejected(rle: dict) -> None:
    with pytest.raises(InvalidInputError):
        decode_rle(rle)


def test_counts_start_with_zero_run() -> None:
    mask = np.array([[1, 0], [1, 1]], dtype=bool)

    assert mask_to_counts(mask) == [0, 2, 1, 1]


def test_encode_decode_round_trip_on_random_masks() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        height, width = rng.integers(1, 30, size=2)
        mask = rng.random((height, width)) < rng.random()

        decoded = decode_rle(encode_rle(mask))

        assert np.array_equal(decoded, mask)


def test_string_codec_handles_large_and_negative_differences() -> None:
    counts = [0, 100000, 3, 7, 99990, 1, 2]

    assert counts_from_string(counts_to_string(counts)) == counts


def test_codec_matches_pycocotools() -> None:
    coco_mask = pytest.importorskip("pycocotools.mask", reason="pycocotools is not installed")
    rng = np.random.default_rng(11)
    for _ in range(100):
        height, width = rng.integers(1, 40, size=2)
        mask = (rng.random((height, width)) < rng.random()).astype(np.uint8)

        reference = coco_mask.encode(np.asfortranarray(mask))
        ours = encode_rle(mask.astype(bool))

        assert ours["counts"] == reference["counts"].decode("ascii")
        assert np.array_equal(decode_rle({"size": list(reference["size"]), "counts": reference["counts"]}), mask)
