"""Image embeddings: pooled EfficientNet-Lite0 features, for comparing images with each other."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from defectlab.images.prepare import Preprocessing
from defectlab.models.efficientnet import load_efficientnet_lite0
from defectlab.models.preprocess import to_batch

__all__ = ["embed_images"]

_BATCH = 16


def embed_images(images: Sequence[np.ndarray], preprocessing: Preprocessing) -> np.ndarray:
    """Return unit-length pooled backbone features, float32 ``(N, 1280)``, of decoded pixels.

    The cosine distance between two rows, ``1 - a @ b``, is small for images that
    look alike to the network and near 1 for unrelated ones.
    """
    backbone = load_efficientnet_lite0()
    rows = [np.zeros((0, 1280), dtype=np.float32)]
    with torch.inference_mode():
        for start in range(0, len(images), _BATCH):
            batch = to_batch([images[i] for i in range(start, min(start + _BATCH, len(images)))], preprocessing)
            rows.append(backbone.forward_pooled(backbone.forward_blocks(backbone.forward_stem(batch))).numpy())
    features = np.concatenate(rows)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
