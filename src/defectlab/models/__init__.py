"""Network definitions, pretrained weights and input preprocessing."""

from defectlab.models.efficientnet import (
    BLOCK_CHANNELS,
    BLOCK_STRIDES,
    FEATURE_DIM,
    NUM_BLOCKS,
    STAGE_LAST_BLOCKS,
    EfficientNetLite0,
    load_efficientnet_lite0,
    pretrained_weights_path,
    pretrained_weights_sha256,
)
from defectlab.models.preprocess import LITE_MEAN, LITE_STD, Preprocessing, fit_preprocessing, to_batch, to_tensor

__all__ = [
    "BLOCK_CHANNELS",
    "BLOCK_STRIDES",
    "FEATURE_DIM",
    "LITE_MEAN",
    "LITE_STD",
    "NUM_BLOCKS",
    "STAGE_LAST_BLOCKS",
    "EfficientNetLite0",
    "Preprocessing",
    "fit_preprocessing",
    "load_efficientnet_lite0",
    "pretrained_weights_path",
    "pretrained_weights_sha256",
    "to_batch",
    "to_tensor",
]
