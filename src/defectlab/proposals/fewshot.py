"""Few-shot proposals: labels for unlabeled images from a handful of labeled ones, in seconds.

The frozen EfficientNet-Lite0 turns every image and its three flipped copies
into patch features once (``extract_patch_features``). The workspace's feature cache
keeps them, so the next round of proposals extracts only the new images. Then:

* with labeled images of two classes or more, ``HEADS`` patch heads
  (``fit_patch_head``, the classifier's head without its fine-tuning) train on
  the labeled images in a few seconds each, from different seeds, and their mean
  gives every unlabeled image its class probabilities. Those assume the class shares of the labeled images. But people
  label a few of each class, while most unlabeled parts are good. So the shares
  of the unlabeled images are estimated from the probabilities themselves, and
  the probabilities are moved half-way to them (``adjust_to_pool`` with
  ``POOL_SHIFT``). The proposal is the most probable class, and its confidence
  is that class's probability;
* with labeled good images only (an anomaly project's start), each patch is
  compared with the good images' patches: an image whose least familiar patch
  lies farther from every good patch than any good image's own (left out of the
  comparison) is proposed as defective.

Either way, an unlabeled image that is a near duplicate of labeled images
(``defectlab.quality.duplicates``: the same part at another exposure, or a
re-encoded copy) whose labels agree is proposed their label, with a confidence
of at least ``COPY_CONFIDENCE`` (``follow_near_copies``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from defectlab.errors import InvalidInputError
from defectlab.formats.records import OK_CLASS
from defectlab.images.prepare import Preprocessing, fit_preprocessing
from defectlab.models.efficientnet import load_efficientnet_lite0
from defectlab.models.preprocess import to_batch
from defectlab.quality.duplicates import NEAR_DISTANCE, copy_distances
from defectlab.training.patches import extract_patch_features, fit_patch_head, patch_probabilities, transform_copy

__all__ = ["COPIES", "COPY_CONFIDENCE", "EPOCHS", "HEADS", "MIN_POOL", "POOL_SHIFT", "FeatureCache", "Guess",
           "adjust_to_pool", "follow_near_copies", "guess_by_distance", "guess_classes", "patch_features"]

logger = logging.getLogger(__name__)

COPIES = ("identity", "horizontal_flip", "vertical_flip", "rotate_180")
"""Copies of each image whose features are kept: training samples one per step, proposals average all four.

With 20 labeled images per magnetic-tile class, four copies were right on 0.889 of
the other images on average over three random choices of the labeled images, and
two copies (identity and mirror image) on 0.878 (0.838 to 0.907)."""

EPOCHS = 60
"""Passes of the patch head over the labeled images; a few seconds for a few hundred images."""

HEADS = 3
"""Patch heads trained from different seeds, whose probabilities are averaged.

With 20 labeled images per magnetic-tile class, one head (two copies) was right on 0.878
of the other images and three heads on 0.896, averaged over three random choices of
the labeled images. With four copies, three heads were right on 0.904 for the first choice."""

MIN_POOL = 20
"""Unlabeled images needed before their class shares are estimated; fewer give too noisy an estimate."""

POOL_SHIFT = 0.5
"""How far proposals move from the labeled images' class shares to the unlabeled ones': 0 not at all, 1 fully.

The heads are overconfident, so the full move overshoots: rare classes such as
``Crack`` were hardly ever proposed. On magnetic tile, half-way kept the right
share at 20 and 50 labels per class (0.904 and 0.969, the same as the full
move; 0.836 and 0.923 without a move). In the simulated review of the whole
set, it cut the corrections from 145 to 106."""

COPY_CONFIDENCE = 0.99
"""Minimum confidence of a proposal taken from labeled near duplicates, so such proposals come up for review last."""

_BATCH = 16


@dataclass(frozen=True)
class Guess:
    """A proposed image-level class and how sure the proposal is, in 0..1."""

    label: str
    confidence: float


class FeatureCache:
    """Patch features on disk, one file per image content, preprocessing and set of copies, so proposals reuse them.

    Args:
        folder: Where the files go; created when first needed.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, sha256: str, preprocessing: Preprocessing) -> Path:
        settings = json.dumps({**preprocessing.to_dict(), "copies": list(COPIES)}, sort_keys=True).encode("utf-8")
        return self.folder / f"{sha256}-{hashlib.sha256(settings).hexdigest()[:16]}.pt"

    def get(self, sha256: str, preprocessing: Preprocessing) -> torch.Tensor | None:
        path = self.path(sha256, preprocessing)
        if not path.is_file():
            return None
        try:
            return torch.load(path, weights_only=True)
        except (OSError, RuntimeError, EOFError) as error:
            logger.warning("feature cache file %s is unreadable (%s); extracting again", path, error)
            return None

    def put(self, sha256: str, preprocessing: Preprocessing, features: torch.Tensor) -> None:
        path = self.path(sha256, preprocessing)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        torch.save(features.clone(), partial)
        partial.replace(path)


def patch_features(images: Sequence[np.ndarray], digests: Sequence[str], preprocessing: Preprocessing,
                   cache: FeatureCache | None = None,
                   report: Callable[[int, int], None] | None = None) -> list[torch.Tensor]:
    """Return per copy in ``COPIES`` float16 features ``(N, 344, h, w)``, from the cache where it has them.

    Args:
        images: Decoded pixels; only those missing from the cache are read.
        digests: Content hash per image, the cache key.
        report: Called as ``report(done, total)`` while features are extracted.
    """
    found = [cache.get(digest, preprocessing) if cache else None for digest in digests]
    missing = [index for index, features in enumerate(found) if features is None]
    if missing:
        logger.info("extracting patch features of %d of %d images", len(missing), len(digests))
        backbone = load_efficientnet_lite0()
        for start in range(0, len(missing), _BATCH):
            chunk = missing[start:start + _BATCH]
            batch = to_batch([images[index] for index in chunk], preprocessing)
            copies = torch.stack([extract_patch_features(backbone, transform_copy(batch, name)) for name in COPIES],
                                 dim=1)
            for index, features in zip(chunk, copies):
                found[index] = features
                if cache:
                    cache.put(digests[index], preprocessing, features)
            if report:
                report(min(start + _BATCH, len(missing)), len(missing))
    if not found:
        return [torch.zeros((0, 0, 0, 0), dtype=torch.float16) for _ in COPIES]
    stacked = torch.stack(found)
    return [stacked[:, copy] for copy in range(len(COPIES))]


def fit_window(images: Sequence[np.ndarray], input_size: tuple[int, int]) -> Preprocessing:
    """Fit the intensity window on all the project's images, labeled or not, so the cache stays valid."""
    return fit_preprocessing((images[index] for index in range(len(images))), input_size, seed=0)


def guess_classes(labeled: Sequence[torch.Tensor], labels: Sequence[str], unlabeled: Sequence[torch.Tensor],
                  class_names: Sequence[str], *, seed: int = 0) -> list[Guess]:
    """Propose a class for each unlabeled image with a patch head trained on the labeled ones.

    Args:
        labeled: Per copy, features of the labeled images (``patch_features``).
        labels: Class name per labeled image; at least two distinct classes.
        unlabeled: Per copy, features of the images to propose for.
        class_names: The project's classes; classes without a labeled image are never proposed.

    Raises:
        InvalidInputError: Fewer than two classes have labeled images.
    """
    present = [name for name in class_names if name in set(labels)]
    if len(present) < 2:
        raise InvalidInputError(f"proposals by class need labeled images of two classes; the labeled images are "
                                f"all {present or 'of no class'}. Label a few images of another class")
    index = {name: position for position, name in enumerate(present)}
    given = np.array([index[label] for label in labels])
    if not len(unlabeled[0]):
        return []
    probabilities = np.zeros((len(unlabeled[0]), len(present)))
    for member in range(HEADS):
        head = fit_patch_head(labeled, given, present, epochs=EPOCHS, seed=seed * HEADS + member)
        probabilities += patch_probabilities(head, unlabeled) / HEADS
    if len(probabilities) >= MIN_POOL:
        shares = np.bincount(given, minlength=len(present)) / len(given)
        probabilities = adjust_to_pool(probabilities, shares, shift=POOL_SHIFT)
    return [Guess(present[int(row.argmax())], float(row.max())) for row in probabilities]


def adjust_to_pool(probabilities: np.ndarray, trained_shares: np.ndarray, *, shift: float = 1.0,
                   iterations: int = 100, tolerance: float = 1e-6) -> np.ndarray:
    """Adjust class probabilities to the class shares of the images they describe, estimated from them.

    A classifier's probabilities carry the class shares of its training images.
    Expectation-maximization finds the shares ``q`` of the pool at which
    ``q`` equals the mean of the adjusted probabilities, where a row is adjusted
    by weighting class ``c`` with ``q[c] / trained_shares[c]`` and normalizing.

    Args:
        probabilities: ``(N, C)``, rows summing to 1.
        trained_shares: ``(C,)`` class shares of the training images, all above 0.
        shift: Power of the weights in the returned rows, 0 to 1: 1 adjusts
            fully, 0.5 weights class ``c`` with ``sqrt(q[c] / trained_shares[c])``
            and 0 returns the rows unchanged. ``q`` is always the full estimate.

    Returns:
        The adjusted probabilities, ``(N, C)`` float64.
    """
    given = np.asarray(probabilities, dtype=np.float64)
    trained = np.asarray(trained_shares, dtype=np.float64)
    shares = trained.copy()
    adjusted = given
    for _ in range(iterations):
        weighted = given * (shares / trained)
        adjusted = weighted / np.maximum(weighted.sum(axis=1, keepdims=True), 1e-12)
        updated = adjusted.mean(axis=0)
        if np.abs(updated - shares).max() < tolerance:
            break
        shares = updated
    if shift == 1.0:
        return adjusted
    weighted = given * (shares / trained) ** shift
    return weighted / np.maximum(weighted.sum(axis=1, keepdims=True), 1e-12)


def guess_by_distance(good: Sequence[torch.Tensor], unlabeled: Sequence[torch.Tensor],
                      defect_class: str) -> list[Guess]:
    """Propose ``ok`` or ``defect_class`` by how far each image's least familiar patch is from the good patches.

    The limit is the largest such distance of a good image measured against the
    other good images. The confidence grows from 0.5 at the limit to 1 at twice
    the spread of the good images' distances away from it.

    Raises:
        InvalidInputError: Fewer than two good images are labeled.
    """
    features = good[0]
    if len(features) < 2:
        raise InvalidInputError("proposals from good images need at least two labeled good images; label more "
                                "images 'ok'")
    memory = _patch_rows(features)
    owner = torch.arange(len(features)).repeat_interleave(memory.shape[0] // len(features))
    reference = np.array([_farthest_patch(_patch_rows(features[row:row + 1]), memory[owner != row])
                          for row in range(len(features))])
    limit = float(reference.max())
    spread = max(float(reference.std()), 1e-6)
    guesses = []
    for row in range(len(unlabeled[0])):
        distance = _farthest_patch(_patch_rows(unlabeled[0][row:row + 1]), memory)
        confidence = 0.5 + 0.5 * min(1.0, abs(distance - limit) / (2 * spread))
        guesses.append(Guess(defect_class if distance > limit else OK_CLASS, confidence))
    return guesses


def _patch_rows(features: torch.Tensor) -> torch.Tensor:
    """Return ``(N * h * w, C)`` unit-length patch vectors of features ``(N, C, h, w)``."""
    rows = features.float().permute(0, 2, 3, 1).reshape(-1, features.shape[1])
    return rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-6)


def _farthest_patch(patches: torch.Tensor, memory: torch.Tensor) -> float:
    """Return the largest, over ``patches``, of the distance to the nearest row of ``memory``."""
    nearest = torch.full((len(patches),), float("inf"))
    for start in range(0, len(memory), 8192):
        nearest = torch.minimum(nearest, torch.cdist(patches, memory[start:start + 8192]).min(dim=1).values)
    return float(nearest.max())


def follow_near_copies(guesses: Sequence[Guess], unlabeled: np.ndarray, labeled: np.ndarray,
                       labels: Sequence[str]) -> list[Guess]:
    """Give each unlabeled image that is a near duplicate of labeled images their label, when they agree.

    Args:
        guesses: One proposal per unlabeled image.
        unlabeled: ``thumbnail`` of each unlabeled image, ``(N, 1024)``.
        labeled: ``thumbnail`` of each labeled image, ``(M, 1024)``.
        labels: Label per labeled image.

    Returns:
        The proposals, where a near duplicate's label replaces the guess with a
        confidence of at least ``COPY_CONFIDENCE``. Copies whose labels
        disagree leave the guess as it is.
    """
    if not len(guesses) or not len(labeled):
        return list(guesses)
    distances = copy_distances(unlabeled, labeled)
    followed = []
    for guess, row in zip(guesses, distances):
        copied = {labels[index] for index in np.flatnonzero(row < NEAR_DISTANCE)}
        if len(copied) == 1:
            label = copied.pop()
            confidence = max(guess.confidence, COPY_CONFIDENCE) if label == guess.label else COPY_CONFIDENCE
            guess = Guess(label, confidence)
        followed.append(guess)
    return followed
