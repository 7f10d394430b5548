"""Few-shot pieces: class shares of the unlabeled pool, and good-only proposals by patch distance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from defectlab.errors import InvalidInputError
from defectlab.proposals.fewshot import COPY_CONFIDENCE, Guess, adjust_to_pool, follow_near_copies, guess_by_distance

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


def test_half_shift_uses_root_weights() -> None:
    trained = np.array([0.5, 0.5])
    shares = adjust_to_pool(POOL, trained).mean(axis=0)  # the fixed point: q is the mean of the full adjustment
    weighted = POOL * np.sqrt(shares / trained)
    expected = weighted / weighted.sum(axis=1, keepdims=True)

    halfway = adjust_to_pool(POOL, trained, shift=0.5)

    assert np.allclose(halfway, expected, atol=1e-5)
    assert POOL[:, 0].mean() < halfway[:, 0].mean() < shares[0]


def test_no_shift_keeps_the_rows() -> None:
    assert np.allclose(adjust_to_pool(POOL, np.array([0.3, 0.7]), shift=0.0), POOL)


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


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def test_near_copies_take_their_label() -> None:
    rng = np.random.default_rng(0)
    labeled = np.stack([unit(rng.normal(size=64)) for _ in range(3)])
    twin = unit(labeled[0] + 0.01 * rng.normal(size=64))  # correlation distance far below 0.05
    between = unit(labeled[1] + labeled[2])  # about 0.3 from both, as random directions are nearly orthogonal
    unlabeled = np.stack([twin, between, twin])
    guesses = [Guess("ok", 0.7), Guess("ok", 0.6), Guess("dent", 0.995)]

    followed = follow_near_copies(guesses, unlabeled, labeled, ["dent", "ok", "scratch"])

    assert followed == [Guess("dent", COPY_CONFIDENCE), Guess("ok", 0.6), Guess("dent", 0.995)]


def test_disagreeing_copies_keep_guess() -> None:
    rng = np.random.default_rng(1)
    base = unit(rng.normal(size=64))
    labeled = np.stack([unit(base + 0.01 * rng.normal(size=64)), unit(base + 0.01 * rng.normal(size=64))])

    followed = follow_near_copies([Guess("ok", 0.55)], base[None], labeled, ["dent", "scratch"])

    assert followed == [Guess("ok", 0.55)]
