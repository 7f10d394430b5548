"""Score rules shared by every way of running a model: PyTorch, the ONNX bundle and the server.

Only NumPy and Pillow are used here, so an exported bundle applies exactly the
rules that training calibrated without PyTorch installed.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

__all__ = ["LOGIT_AT_GOOD_MEDIAN", "normalize_anomaly", "upsample"]

LOGIT_AT_GOOD_MEDIAN = math.log(19.0)
"""A typical good image (the median held-out good raw score) maps to 1 / (1 + 19) = 0.05."""


def normalize_anomaly(raw: np.ndarray, threshold: float, good_median: float) -> np.ndarray:
    """Map raw anomaly distances to 0..1 so that ``threshold`` maps to 0.5.

    ``score = sigmoid(ln(19) * (raw - threshold) / (threshold - good_median))``;
    see ``defectlab.training.anomaly`` for why.

    Args:
        raw: Raw scores or a heatmap in feature-distance units, any shape.
        threshold: Raw score at which an image becomes defective.
        good_median: Median raw score of held-out good images.

    Returns:
        float32 array of the same shape, each value in 0..1; all 0 while the
        threshold is still infinite (before calibration).
    """
    values = np.asarray(raw, dtype=np.float64)
    if not math.isfinite(threshold):
        return np.zeros(values.shape, dtype=np.float32)
    scale = max(threshold - good_median, 1e-6 * abs(threshold), 1e-12)
    logits = LOGIT_AT_GOOD_MEDIAN * (values - threshold) / scale
    return (0.5 * (1.0 + np.tanh(0.5 * logits))).astype(np.float32)


def upsample(patch_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a patch map ``(h, w)`` to ``size`` (height, width) with bilinear interpolation, float32 out."""
    height, width = size
    plane = Image.fromarray(np.ascontiguousarray(patch_map, dtype=np.float32))
    return np.asarray(plane.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
