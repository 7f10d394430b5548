"""The threshold decides which defects exist; each class's outline level decides which pixels a defect covers."""

from __future__ import annotations

import numpy as np

from defectlab.runtime.regions import decide_from_pixels, draw_regions, find_regions

NAMES = ["ok", "pit", "stain"]


def blob_with_halo() -> tuple[np.ndarray, np.ndarray]:
    """A pit: a 2 x 2 core at 0.9 inside a 6 x 6 halo at 0.6, on a background at 0.1."""
    classes = np.ones((20, 20), dtype=np.uint8)
    defect = np.full((20, 20), 0.1, dtype=np.float16)
    defect[5:11, 5:11] = 0.6
    defect[7:9, 7:9] = 0.9
    return classes, defect


def test_without_outlines_threshold_draws() -> None:
    classes, defect = blob_with_halo()
    drawn = draw_regions(classes, defect, threshold=0.5)
    assert np.count_nonzero(drawn) == 36
    assert set(np.unique(drawn)) == {0, 1}


def test_high_outline_draws_core_only() -> None:
    classes, defect = blob_with_halo()
    drawn = draw_regions(classes, defect, threshold=0.5, outlines=[0.5, 0.8, 0.5])
    expected = np.zeros((20, 20), dtype=np.uint8)
    expected[7:9, 7:9] = 1
    np.testing.assert_array_equal(drawn, expected)


def test_outline_above_peak_keeps_group() -> None:
    classes, defect = blob_with_halo()
    drawn = draw_regions(classes, defect, threshold=0.5, outlines=[0.5, 0.95, 0.5])
    assert np.count_nonzero(drawn) == 36


def test_low_outline_grows_decided_defect() -> None:
    classes, defect = blob_with_halo()
    defect[5:11, 5:11] = 0.3
    defect[7:9, 7:9] = 0.9
    drawn = draw_regions(classes, defect, threshold=0.5, outlines=[0.5, 0.25, 0.5])
    assert np.count_nonzero(drawn) == 36


def test_low_outline_adds_no_undecided_defect() -> None:
    classes, defect = blob_with_halo()
    defect[15:18, 15:18] = 0.3
    drawn = draw_regions(classes, defect, threshold=0.5, outlines=[0.5, 0.25, 0.5])
    assert np.count_nonzero(drawn[13:, 13:]) == 0


def test_outline_applies_to_its_class_only() -> None:
    classes, defect = blob_with_halo()
    classes[5:11, 5:11] = 2
    classes[7:9, 7:9] = 2
    drawn = draw_regions(classes, defect, threshold=0.5, outlines=[0.5, 0.8, 0.5])
    assert np.count_nonzero(drawn == 2) == 36


def test_regions_measured_on_outline() -> None:
    classes, defect = blob_with_halo()
    regions = find_regions(classes, defect, NAMES, threshold=0.5, outlines=[0.5, 0.8, 0.5],
                           rules={"pit": {"min_area": 5}})
    assert [(r["class"], r["box"], r["area"], r["counts"]) for r in regions] == [("pit", [7, 7, 9, 9], 4, False)]


def test_decision_keeps_peak_score() -> None:
    classes, defect = blob_with_halo()
    score, regions = decide_from_pixels(classes, defect, NAMES, threshold=0.5, outlines=[0.5, 0.8, 0.5])
    assert score == round(float(np.float16(0.9)), 6)
    assert len(regions) == 1
