"""The tiling rule and the tiles training samples around defects and elsewhere."""

from __future__ import annotations

import numpy as np

from defectlab.training.tiling import choose_tiling, defect_widths, sample_tiles


def test_large_image_with_tiny_defect_is_tiled() -> None:
    choice = choose_tiling([(5001, 5003)], [6.0], (256, 256))
    assert choice.tile == (256, 256)
    assert choice.overlap == 32
    assert "tiles at native resolution" in choice.reason


def test_moderate_shrink_keeps_whole_images() -> None:
    # 512 px to 256 px halves a 6 px defect to 3 px, but a shrink of 2 is allowed.
    assert choose_tiling([(512, 512)], [6.0], (256, 256)).tile is None
    # 1024 px shrinks 4 times; a 40 px defect stays 10 px wide.
    assert choose_tiling([(1024, 1024)], [40.0], (256, 256)).tile is None
    assert choose_tiling([(1024, 1024)], [12.0], (256, 256)).tile == (256, 256)


def test_unlabeled_projects_tile_only_huge_images() -> None:
    assert choose_tiling([(1024, 1024)], [], (256, 256)).tile is None
    assert choose_tiling([(2000, 8000)], [], (256, 256)).tile == (256, 256)


def test_defect_widths_are_narrow_sides() -> None:
    class_map = np.zeros((50, 60), dtype=np.uint8)
    class_map[5:8, 10:40] = 1
    class_map[30:45, 50:52] = 2
    assert sorted(defect_widths(class_map)) == [2.0, 3.0]


def test_sampled_tiles_contain_each_defect_and_background() -> None:
    rng = np.random.default_rng(0)
    pixels = np.zeros((500, 700), dtype=np.uint8)
    class_map = np.zeros((500, 700), dtype=np.uint8)
    class_map[494:500, 694:700] = 1
    class_map[100:106, 50:56] = 1
    tiles, maps = sample_tiles(pixels, class_map, (64, 64), rng)
    assert len(tiles) == 4
    assert all(tile.shape == (64, 64) for tile in tiles)
    assert int(maps[0].sum()) == 36
    assert int(maps[1].sum()) == 36
