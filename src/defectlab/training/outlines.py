"""Outline levels of a segmentation model: per defect class, the defect probability that traces labeled edges best.

A segmentation model trained on oversampled defect pixels rates the pixels
around a thin defect too high, so a blowhole or a crack drawn at the image
threshold spreads over its neighbours. A large, faint defect shows the
opposite. ``OutlineCounts`` gathers, over the dev images, how many pixels of
each class the model would draw at each candidate level and how many of them
are labeled that class. ``choose`` then picks per class the level with the
highest IoU over all dev images. A class's IoU depends only on its own level,
because a pixel is drawn as that class only when the class is its likeliest
defect class, so each class is chosen on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from defectlab.evaluation.masks import IGNORE_INDEX

__all__ = ["OUTLINE_LEVELS", "OutlineCounts"]

OUTLINE_LEVELS = np.round(np.arange(0.05, 0.96, 0.05), 2)
"""Candidate outline levels: 0.05, 0.10, ..., 0.95."""


class OutlineCounts:
    """Pixel counts per defect class and candidate level, summed over images.

    Args:
        class_names: Class per index; index 0 is ``ok``.
    """

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)
        shape = (len(self.class_names), len(OUTLINE_LEVELS))
        self.truth = np.zeros(len(self.class_names), dtype=np.int64)
        self.drawn = np.zeros(shape, dtype=np.int64)
        self.overlap = np.zeros(shape, dtype=np.int64)

    def add(self, classes: np.ndarray, defect: np.ndarray, truth: np.ndarray) -> None:
        """Count one image: its likeliest defect class and defect probability per pixel, and its labeled mask.

        Pixels labeled ``IGNORE_INDEX`` count for nothing.
        """
        labeled = truth != IGNORE_INDEX
        for index in range(1, len(self.class_names)):
            candidate = labeled & (classes == index)
            self.truth[index] += int(np.count_nonzero(truth == index))
            self.drawn[index] += _at_or_above(defect[candidate])
            self.overlap[index] += _at_or_above(defect[candidate & (truth == index)])

    def choose(self) -> dict[str, float]:
        """Return the outline level of each defect class with labeled pixels, by name.

        Of levels with equal IoU the one closest to 0.5 wins. A class without
        labeled pixels in the counted images gets no level.
        """
        union = self.truth[:, None] + self.drawn - self.overlap
        iou = np.divide(self.overlap, union, out=np.zeros(union.shape), where=union > 0)
        preference = np.abs(OUTLINE_LEVELS - 0.5)
        levels = {}
        for index in range(1, len(self.class_names)):
            if self.truth[index] == 0:
                continue
            best = np.flatnonzero(iou[index] == iou[index].max())
            levels[self.class_names[index]] = float(OUTLINE_LEVELS[best[np.argmin(preference[best])]])
        return levels


def _at_or_above(values: np.ndarray) -> np.ndarray:
    """Return per candidate level the number of values at or above it, int64 ``(len(OUTLINE_LEVELS),)``."""
    ordered = np.sort(values.astype(np.float32, copy=False), axis=None)
    return len(ordered) - np.searchsorted(ordered, OUTLINE_LEVELS.astype(np.float32), side="left")
