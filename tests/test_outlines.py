"""Outline levels are chosen per class for the highest IoU against the labeled masks."""

from __future__ import annotations

import numpy as np
import pytest

from defectlab.evaluation.masks import IGNORE_INDEX
from defectlab.training.outlines import OUTLINE_LEVELS, OutlineCounts

NAMES = ["ok", "pit", "stain"]


def pit_image() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A labeled 4 x 4 pit; the model rates it 0.9 and a ring of 12 more pixels around it 0.7."""
    truth = np.zeros((16, 16), dtype=np.uint8)
    truth[6:10, 6:10] = 1
    classes = np.ones((16, 16), dtype=np.uint8)
    defect = np.full((16, 16), 0.02, dtype=np.float16)
    defect[5:11, 5:11] = 0.7
    defect[6:10, 6:10] = 0.9
    return classes, defect, truth


def iou_at(level: float, classes: np.ndarray, defect: np.ndarray, truth: np.ndarray, index: int) -> float:
    drawn = (classes == index) & (defect.astype(np.float32) >= np.float32(level)) & (truth != IGNORE_INDEX)
    labeled = truth == index
    return np.count_nonzero(drawn & labeled) / np.count_nonzero(drawn | labeled)


def test_level_fits_labeled_edge() -> None:
    classes, defect, truth = pit_image()
    counts = OutlineCounts(NAMES)
    counts.add(classes, defect, truth)
    levels = counts.choose()
    # Every level in (0.7, 0.9] draws exactly the pit; of those, 0.75 is closest to 0.5.
    assert iou_at(0.75, classes, defect, truth, 1) == 1.0
    assert iou_at(0.7, classes, defect, truth, 1) == pytest.approx(16 / 36)
    assert levels == {"pit": 0.75}


def test_counts_match_direct_iou() -> None:
    rng = np.random.default_rng(3)
    counts = OutlineCounts(NAMES)
    images = []
    for _ in range(3):
        truth = rng.integers(0, 3, size=(12, 12)).astype(np.uint8)
        truth[0, :4] = IGNORE_INDEX
        classes = rng.integers(1, 3, size=(12, 12)).astype(np.uint8)
        defect = rng.random((12, 12)).astype(np.float16)
        counts.add(classes, defect, truth)
        images.append((classes, defect, truth))
    for index in (1, 2):
        for position, level in enumerate(OUTLINE_LEVELS):
            above = [(c == index) & (d.astype(np.float32) >= np.float32(level)) for c, d, _ in images]
            drawn = sum(np.count_nonzero(a & (t != IGNORE_INDEX)) for a, (_, _, t) in zip(above, images))
            hits = sum(np.count_nonzero(a & (t == index)) for a, (_, _, t) in zip(above, images))
            assert counts.drawn[index, position] == drawn
            assert counts.overlap[index, position] == hits
        assert counts.truth[index] == sum(np.count_nonzero(t == index) for _, _, t in images)


def test_class_without_labels_gets_none() -> None:
    classes, defect, truth = pit_image()
    counts = OutlineCounts(NAMES)
    counts.add(classes, defect, truth)
    assert "stain" not in counts.choose()


def test_ignored_pixels_count_nothing() -> None:
    classes, defect, truth = pit_image()
    truth[5:11, 5:11][truth[5:11, 5:11] == 0] = IGNORE_INDEX
    counts = OutlineCounts(NAMES)
    counts.add(classes, defect, truth)
    # The ring is ignored now, so the lowest levels draw only the pit and ties go to the level nearest 0.5.
    assert counts.choose() == {"pit": 0.5}
