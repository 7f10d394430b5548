"""Label-preserving copies of training images, within the plan's safe ranges.

Only flips, 90-degree turns and small brightness and contrast changes are
used: none of them moves a defect out of the image or pushes it to white or
black, so a copy always keeps its label.
"""

from __future__ import annotations

import numpy as np
import torch

from defectlab.training.autotune import Augmentations

__all__ = ["VARIANTS", "augment_batch", "variants_for"]

VARIANTS = ("identity", "horizontal_flip", "vertical_flip", "rotate_180", "rotate_90")
"""Geometric copies of an image; ``rotate_90`` needs a square input."""


def variants_for(augmentations: Augmentations) -> list[str]:
    """Return the geometric copies the plan allows, ``identity`` first."""
    chosen = ["identity"]
    if augmentations.horizontal_flip:
        chosen.append("horizontal_flip")
    if augmentations.vertical_flip:
        chosen.append("vertical_flip")
    if augmentations.horizontal_flip and augmentations.vertical_flip:
        chosen.append("rotate_180")
    if augmentations.rotate_90:
        chosen.append("rotate_90")
    return chosen


def augment_batch(batch: torch.Tensor, variant: str, augmentations: Augmentations,
                  rng: np.random.Generator) -> torch.Tensor:
    """Apply one geometric copy and, except for ``identity``, a random intensity change.

    Args:
        batch: Normalized network input, float32 ``(N, 3, H, W)``.
        variant: A name from ``VARIANTS``.
        augmentations: The plan's ranges; brightness and contrast are fractions
            of the 0..1 intensity window.
        rng: Source of the random intensity changes.
    """
    if variant == "horizontal_flip":
        batch = batch.flip(3)
    elif variant == "vertical_flip":
        batch = batch.flip(2)
    elif variant == "rotate_180":
        batch = batch.flip(2).flip(3)
    elif variant == "rotate_90":
        batch = batch.rot90(1, dims=(2, 3))
    if variant == "identity":
        return batch.contiguous()
    return _jitter_intensity(batch, augmentations, rng)


def _jitter_intensity(batch: torch.Tensor, augmentations: Augmentations, rng: np.random.Generator) -> torch.Tensor:
    # Inputs are (v - mean) / std with v in 0..1, and ImageNet's three std values
    # differ by less than 3 %, so one shift in input units is nearly the same
    # shift in the 0..1 window on every channel.
    count = batch.shape[0]
    shift = rng.uniform(-augmentations.brightness, augmentations.brightness, count) / 0.226
    scale = 1.0 + rng.uniform(-augmentations.contrast, augmentations.contrast, count)
    shift_tensor = torch.as_tensor(shift, dtype=batch.dtype)[:, None, None, None]
    scale_tensor = torch.as_tensor(scale, dtype=batch.dtype)[:, None, None, None]
    centre = batch.mean(dim=(1, 2, 3), keepdim=True)
    return ((batch - centre) * scale_tensor + centre + shift_tensor).contiguous()
