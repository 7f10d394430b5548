"""Choose the defect threshold of a classifier from dev images with known labels."""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_THRESHOLD", "LOWEST_THRESHOLD", "choose_defect_threshold"]

DEFAULT_THRESHOLD = 0.5
LOWEST_THRESHOLD = 0.05
"""Floor of the threshold: below it nearly every good image would be rejected on a small dev set's word."""


def choose_defect_threshold(good_scores: np.ndarray, defect_scores: np.ndarray, *, escape_cost: float) -> float:
    """Return the threshold in ``[LOWEST_THRESHOLD, 0.5]`` with the lowest cost on dev images.

    The cost is ``escape_cost * escapes + overkills``, where an image is
    defective when its score is above the threshold. The cost only changes at
    the dev scores, so the candidates are 0.5, the midpoints between
    neighbouring scores (away from every image) and the floor. Of the
    candidates with the lowest cost the highest wins, so the threshold leaves
    0.5 only when that removes escapes or overkills.
    """
    good = np.asarray(good_scores, dtype=np.float64)
    defect = np.asarray(defect_scores, dtype=np.float64)
    if defect.size == 0:
        return DEFAULT_THRESHOLD

    points = np.unique(np.concatenate([good, defect, [LOWEST_THRESHOLD, DEFAULT_THRESHOLD]]))
    points = points[(points >= LOWEST_THRESHOLD) & (points <= DEFAULT_THRESHOLD)]
    candidates = [DEFAULT_THRESHOLD, *((points[1:] + points[:-1]) / 2)[::-1], LOWEST_THRESHOLD]
    costs = [_cost(t, good, defect, escape_cost) for t in candidates]
    return float(candidates[int(np.argmin(costs))])


def _cost(threshold: float, good: np.ndarray, defect: np.ndarray, escape_cost: float) -> float:
    escapes = int(np.sum(defect <= threshold))
    overkills = int(np.sum(good > threshold))
    return escape_cost * escapes + overkills
