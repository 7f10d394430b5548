"""Network input as PyTorch tensors; the rules themselves are in ``defectlab.images.prepare``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from defectlab.images.prepare import LITE_MEAN, LITE_STD, Preprocessing, fit_preprocessing, to_array, to_arrays

__all__ = ["LITE_MEAN", "LITE_STD", "Preprocessing", "fit_preprocessing", "to_batch", "to_tensor"]


def to_tensor(pixels: np.ndarray, prep: Preprocessing) -> torch.Tensor:
    """Return ``to_array`` as a tensor, float32 ``(3, height, width)``."""
    return torch.from_numpy(to_array(pixels, prep))


def to_batch(images: Sequence[np.ndarray], prep: Preprocessing) -> torch.Tensor:
    """Return ``to_arrays`` as a tensor, float32 ``(N, 3, height, width)``."""
    return torch.from_numpy(to_arrays(images, prep))
