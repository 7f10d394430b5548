"""Tiles cover every pixel, edges and corners included, and stitch back to the full size in bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from defectlab.runtime.regions import find_regions, passes_rule
from defectlab.runtime.tiles import cut_tile, plan_tiles, predict_tiled, tile_origins


def test_origins_end_flush_with_edge() -> None:
    assert tile_origins(100, 40, 8) == [0, 32, 60]
    assert tile_origins(40, 40, 8) == [0]
    assert tile_origins(30, 40, 8) == [0]


@pytest.mark.parametrize(("height", "width"), [(100, 100), (5003, 5001), (2000, 8000), (31, 77)])
def test_cores_partition_image(height: int, width: int) -> None:
    tiles = plan_tiles(height, width, (256, 320), 32)
    rows = sorted({(t.core[0], t.core[1]) for t in tiles})
    columns = sorted({(t.core[2], t.core[3]) for t in tiles})
    assert rows[0][0] == 0
    assert rows[-1][1] == height
    assert all(a[1] == b[0] for a, b in zip(rows, rows[1:]))
    assert columns[0][0] == 0
    assert columns[-1][1] == width
    assert all(a[1] == b[0] for a, b in zip(columns, columns[1:]))
    for t in tiles:
        assert t.y <= t.core[0]
        assert t.core[1] <= t.y + 256
        assert t.x <= t.core[2]
        assert t.core[3] <= t.x + 320


def test_small_image_is_padded_with_edge_pixels() -> None:
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    tile = cut_tile(pixels, 0, 0, (5, 6))
    assert tile.shape == (5, 6)
    assert tile[4, 5] == pixels[2, 3]
    assert tile[0, 5] == pixels[0, 3]


def bright_pixels(tiles: list[np.ndarray]) -> list[np.ndarray]:
    """Score a pixel as defect class 1 with probability 0.9 where it is brighter than 200."""
    scored = []
    for tile in tiles:
        defect = np.where(tile > 200, 0.9, 0.05).astype(np.float32)
        scored.append(np.stack([1.0 - defect, defect]))
    return scored


def test_corner_defect_found_in_bounded_memory() -> None:
    pixels = np.full((5001, 5003), 90, dtype=np.uint8)
    pixels[5001 - 9:5001 - 3, 5003 - 9:5003 - 3] = 255
    tracemalloc.start()
    stitched = predict_tiled(pixels, bright_pixels, (320, 320), 32)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert stitched.classes.shape == (5001, 5003)
    regions = find_regions(stitched.classes, stitched.defect, ["ok", "pit"], threshold=0.5)
    assert [(r["class"], r["box"], r["area"]) for r in regions] == [("pit", [4994, 4992, 5000, 4998], 36)]
    assert regions[0]["score"] == pytest.approx(0.9, abs=1e-3)
    # The stitched result is 3 bytes a pixel (75 MB here); allow the image itself and a few tiles on top.
    assert peak < 3 * 5001 * 5003 + 50_000_000


def test_regions_follow_decision_rule() -> None:
    classes = np.ones((20, 30), dtype=np.uint8)
    defect = np.full((20, 30), 0.2, dtype=np.float32)
    classes[2:4, 2:12] = 1
    defect[2:4, 2:12] = 0.7
    classes[10:12, 20:22] = 2
    defect[10:12, 20:22] = 0.95
    regions = find_regions(classes, defect, ["ok", "scratch", "pit"], threshold=0.5,
                           rules={"scratch": {"min_length": 12}})
    assert [(r["class"], r["box"], r["area"], r["counts"]) for r in regions] == [
        ("pit", [20, 10, 22, 12], 4, True), ("scratch", [2, 2, 12, 4], 20, False)]


@pytest.mark.parametrize(("rule", "expected"), [
    ({}, True),
    ({"min_length": 10}, True),
    ({"min_length": 10.5}, False),
    ({"min_area": 20}, True),
    ({"min_area": 21}, False),
    ({"unit": "mm", "pixel_size_mm": 0.1, "min_length": 1.0}, True),
    ({"unit": "mm", "pixel_size_mm": 0.1, "min_area": 0.21}, False),
])
def test_rule_limits_inclusive(rule: dict, expected: bool) -> None:
    # A 10 x 2 box of 20 pixels: length 10 px (1.0 mm at 0.1 mm a pixel), area 20 px (0.2 mm²).
    assert passes_rule([0, 0, 10, 2], 20, rule) is expected
