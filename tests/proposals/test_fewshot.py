"""Few-shot pieces: class shares of the unlabeled pool, and good-only proposals by patch distance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from defectlab.errors import InvalidInputError
from defectlab.proposals.fewshot import adjust_to_pool, guess_by_distance

POOL = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.45, 0.55], [0.2, 0.8]])


def test_pool_with_training_shares_is_unchanged() -> None:
    balanced = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.4, 0.6]])

    assert np.allclose(adjust_to_pool(balanced, np.array([0.5, 0.5])), balanced)


def test_pool_shares_reach_their_fixed_point() -> None:
    trained = np.array([0.5, 0.5])

    def mean_first_class(share: float) -> float:
        weighted = POOL * np.array([share, 1 - share]) / trained
        return float((weighted[:, 0] / weighted.sum(axis=1)).mean()) - share

    # The pool leans to the first class, so its share settles above 0.5 where q equals the mean adjusted probability.
    expected = brentq(mean_first_class, 0.5, 0.999)

    adjusted = adjust_to_pool(POOL, trained)

    assert adjusted[:, 0].mean() == pytest.approx(expected, abs=1e-4)
    assert np.allclose(adjusted.sum(axis=1), 1.0)


def test_borderline_row_follows_the_pool() -> None:
    adjusted = adjust_to_pool(POOL, np.array([0.5, 0.5]))

    assert POOL[3].argmax() == 1
    assert adjusted[3].argmax() == 0


def features(rng: np.random.Generator, count: int, *, odd_patch: bool) -> torch.Tensor:
    """Return float16 patch features ``(count, 8, 4, 4)``: shared directions, one far patch when ``odd_patch``."""
    base = np.tile(np.eye(8)[:, :, None, None][:4].sum(axis=0), (count, 1, 4, 4)).astype(np.float32)
    noisy = base + rng.normal(0, 0.05, base.shape).astype(np.float32)
    if odd_patch:
        noisy[:, :, 2, 1] = 0.0
        noisy[:, 7, 2, 1] = 1.0
    return torch.as_tensor(noisy).half()


def test_good_only_proposals_find_odd_patches() -> None:
    rng = np.random.default_rng(0)
    good = features(rng, 6, odd_patch=False)
    pool = torch.cat([features(rng, 3, odd_patch=False), features(rng, 3, odd_patch=True)])

    guesses = guess_by_distance([good], [pool], "dent")

    assert [guess.label for guess in guesses] == ["ok"] * 3 + ["dent"] * 3
    assert all(0.5 <= guess.confidence <= 1.0 for guess in guesses)
    assert min(guess.confidence for guess in guesses[3:]) == 1.0


def test_good_only_needs_two_images() -> None:
    rng = np.random.default_rng(0)

    with pytest.raises(InvalidInputError, match="at least two labeled good images"):
        guess_by_distance([features(rng, 1, odd_patch=False)], [features(rng, 2, odd_patch=False)], "dent")
