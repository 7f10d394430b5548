"""EfficientNet-Lite0: weight loading, ImageNet predictions and feature maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from defectlab.errors import InvalidInputError
from defectlab.models.efficientnet import (
    BLOCK_CHANNELS,
    BLOCK_STRIDES,
    STAGE_LAST_BLOCKS,
    load_efficientnet_lite0,
    pretrained_weights_path,
)
from defectlab.models.preprocess import LITE_MEAN, LITE_STD

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PALACE, DAISY = 698, 985


@pytest.fixture(scope="module")
def network():
    return load_efficientnet_lite0()


def _center_crop(pixels: np.ndarray, mean: tuple, std: tuple) -> torch.Tensor:
    """Resize the short side to 256 px, crop the central 224 x 224, normalize: (1, 3, 224, 224)."""
    image = Image.fromarray(pixels)
    scale = 256 / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)
    left, top = (image.width - 224) // 2, (image.height - 224) // 2
    array = np.asarray(image.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255.0
    tensor = (torch.from_numpy(array).permute(2, 0, 1) - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    return tensor[None]


def _sample_images() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_sample_image

    return {"china.jpg": load_sample_image("china.jpg"), "flower.jpg": load_sample_image("flower.jpg")}


def test_weights_load_with_every_key(network):
    saved = torch.load(pretrained_weights_path(), weights_only=True)

    assert len(saved) == 296
    assert set(network.state_dict()) == set(saved)


@pytest.mark.parametrize(("name", "expected_class"), [("china.jpg", PALACE), ("flower.jpg", DAISY)])
def test_imagenet_top1_on_sample_photos(network, name, expected_class):
    batch = _center_crop(_sample_images()[name], LITE_MEAN, LITE_STD)

    with torch.inference_mode():
        probabilities = torch.softmax(network(batch), dim=1)[0]

    assert int(probabilities.argmax()) == expected_class
    assert float(probabilities.max()) > 0.25


def _stem_variance_mismatch(network, batch: torch.Tensor) -> float:
    """Mean absolute log ratio between the stem's batch variance and its running variance."""
    with torch.inference_mode():
        stem = network._conv_stem(batch)
    running = network._bn0.running_var + 1e-3
    return float((stem.var(dim=(0, 2, 3)) + 1e-3).div(running).log().abs().mean())


def test_batch_norm_statistics_fit_lite_normalization(network):
    photos = list(_sample_images().values())
    lite = torch.cat([_center_crop(p, LITE_MEAN, LITE_STD) for p in photos])
    imagenet = torch.cat([_center_crop(p, IMAGENET_MEAN, IMAGENET_STD) for p in photos])

    lite_mismatch = _stem_variance_mismatch(network, lite)
    imagenet_mismatch = _stem_variance_mismatch(network, imagenet)

    assert lite_mismatch < 0.6
    assert lite_mismatch < imagenet_mismatch / 2


def test_feature_maps_have_documented_shapes(network):
    images = torch.randn(2, 3, 96, 160)

    with torch.inference_mode():
        maps = network.extract_feature_maps(images, STAGE_LAST_BLOCKS)

    for block, feature_map in zip(STAGE_LAST_BLOCKS, maps):
        stride = BLOCK_STRIDES[block]
        assert tuple(feature_map.shape) == (2, BLOCK_CHANNELS[block], 96 // stride, 160 // stride)


def test_forward_steps_compose_to_forward(network):
    images = torch.randn(1, 3, 64, 64)

    with torch.inference_mode():
        trunk = network.forward_blocks(network.forward_stem(images), stop=11)
        logits = network.forward_logits(network.forward_pooled(network.forward_blocks(trunk, start=11)))
        expected = network(images)

    assert torch.allclose(logits, expected, atol=1e-5)


def test_invalid_block_index_rejected(network):
    with pytest.raises(InvalidInputError, match="0 to 15"):
        network.extract_feature_maps(torch.zeros(1, 3, 64, 64), [16])


def test_missing_weight_file_rejected(tmp_path):
    with pytest.raises(InvalidInputError, match="not found"):
        load_efficientnet_lite0(tmp_path / "missing.pth")
