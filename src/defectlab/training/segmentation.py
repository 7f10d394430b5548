"""Semantic segmentation: EfficientNet-Lite0 with its deep blocks fine-tuned and a per-pixel decoder.

DRAFT 2
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from defectlab.errors import InvalidInputError, TrainingError
from defectlab.evaluation.masks import IGNORE_INDEX
from defectlab.formats.records import OK_CLASS
from defectlab.models.efficientnet import (
    BLOCK_CHANNELS,
    EfficientNetLite0,
    backbone_record,
    check_saved_model,
    load_efficientnet_lite0,
)
from defectlab.models.preprocess import Preprocessing, fit_preprocessing, to_batch
from defectlab.training.patches import transform_copy

__all__ = ["Segmenter", "choose_input_size", "train_segmenter"]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

_FORMAT = "defectlab.segmenter"
_FORMAT_VERSION = 1
FROZEN_BLOCKS = 11
LEVEL_BLOCKS = (-1, 2, 4, 10, 14)
LEVEL_CHANNELS = (32, BLOCK_CHANNELS[2], BLOCK_CHANNELS[4], BLOCK_CHANNELS[10], BLOCK_CHANNELS[14])
_ALIGN = 32
_MAX_AREA = 1280 * 512
_MIN_SIDE = 64
_COPIES = ("identity", "horizontal_flip")
_WIDTH = 128
_CROP = 512
_BATCH = 8
_DECODER_RATE = 2e-3
_TAIL_RATE = 3e-4
_FINE_TUNE = True
_DEFECT_CROP_SHARE = 0.5
_PER_DEFECT = 600
_NEAR = 200
_PER_BACKGROUND = 300
_NEAR_DISTANCE = 8
_EPOCHS = 12
_EXTRACT_BATCH = 4


# ---------------------------------------------------------------- network


def encode_frozen(backbone: EfficientNetLite0, batch: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    x = backbone.forward_stem(batch.contiguous(memory_format=torch.channels_last))
    levels = [x]
    for index in range(FROZEN_BLOCKS):
        x = backbone._blocks[index](x)
        if index in LEVEL_BLOCKS:
            levels.append(x)
    return levels, x


def encode_tail(backbone: EfficientNetLite0, middle: torch.Tensor) -> list[torch.Tensor]:
    levels, x = [], middle
    for index in range(FROZEN_BLOCKS, LEVEL_BLOCKS[-1] + 1):
        x = backbone._blocks[index](x)
        if index in LEVEL_BLOCKS:
            levels.append(x)
    return levels


def _frozen_levels() -> int:
    return sum(1 for block in LEVEL_BLOCKS if block < FROZEN_BLOCKS)


class PixelDecoder(nn.Module):
    """Per-pixel decoder: each level projected to ``_WIDTH`` channels, upsampled, summed, two more 1x1 layers."""

    def __init__(self, class_count: int) -> None:
        super().__init__()
        self.project = nn.ModuleList(nn.Conv2d(c, _WIDTH, 1, bias=False) for c in LEVEL_CHANNELS)
        self.bias = nn.Parameter(torch.zeros(_WIDTH))
        self.hidden = nn.Conv2d(_WIDTH, _WIDTH, 1)
        self.classify = nn.Conv2d(_WIDTH, class_count, 1)
        for level, channels in enumerate(LEVEL_CHANNELS):
            self.register_buffer(f"mean{level}", torch.zeros(1, channels, 1, 1))
            self.register_buffer(f"std{level}", torch.ones(1, channels, 1, 1))

    def standardize(self, level: int, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - getattr(self, f"mean{level}")) / getattr(self, f"std{level}")

    def head(self, summed: torch.Tensor) -> torch.Tensor:
        return self.classify(F.relu(self.hidden(F.relu(summed))))

    def forward(self, levels: Sequence[torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
        total = self.bias.view(1, -1, 1, 1)
        for level, feature_map in enumerate(levels):
            projected = self.project[level](self.standardize(level, feature_map))
            if tuple(projected.shape[-2:]) != tuple(grid):
                projected = F.interpolate(projected, size=grid, mode="bilinear", align_corners=False)
            total = total + projected
        return self.head(total)

    def project_points(self, frozen: torch.Tensor) -> torch.Tensor:
        """Project sampled frozen-level vectors ``(P, 96)`` to ``(P, _WIDTH)``."""
        parts = torch.split(frozen.float(), list(LEVEL_CHANNELS[:_frozen_levels()]), dim=1)
        total = self.bias[None]
        for level, part in enumerate(parts):
            mean = getattr(self, f"mean{level}").view(1, -1)
            std = getattr(self, f"std{level}").view(1, -1)
            total = total + F.linear((part - mean) / std, self.project[level].weight[:, :, 0, 0])
        return total


class SegmentationNetwork(nn.Module):
    def __init__(self, backbone: EfficientNetLite0, decoder: PixelDecoder, copies: Sequence[str]) -> None:
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder
        self.copies = tuple(copies)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        size = tuple(batch.shape[-2:])
        grid = (-(-size[0] // 2), -(-size[1] // 2))
        total = torch.zeros(())
        for name in self.copies:
            frozen, middle = encode_frozen(self.backbone, transform_copy(batch, name))
            levels = frozen + encode_tail(self.backbone, middle)
            probabilities = torch.softmax(self.decoder(levels, grid), dim=1)
            probabilities = F.interpolate(probabilities, size=size, mode="bilinear", align_corners=False)
            total = total + transform_copy(probabilities, name)
        return total / len(self.copies)


# ---------------------------------------------------------------- model


class Segmenter:
    def __init__(self, preprocessing: Preprocessing, class_names: Sequence[str], decoder: PixelDecoder, *,
                 backbone: EfficientNetLite0, copies: Sequence[str] = _COPIES,
                 loss_history: Sequence[dict[str, float]] = (), settings: dict[str, Any] | None = None) -> None:
        self.preprocessing = preprocessing
        self.class_names = list(class_names)
        self.decoder = decoder.eval()
        self.backbone = backbone.eval()
        self.copies = tuple(copies)
        self.loss_history = [dict(entry) for entry in loss_history]
        self.settings = dict(settings or {})
        self._network = SegmentationNetwork(self.backbone, self.decoder, self.copies).eval()

    @property
    def input_size(self) -> tuple[int, int]:
        return self.preprocessing.input_size

    def module(self) -> nn.Module:
        return self._network

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        results = []
        with torch.inference_mode():
            for start in range(0, len(images), _EXTRACT_BATCH):
                chunk = [images[i] for i in range(start, min(start + _EXTRACT_BATCH, len(images)))]
                probabilities = self._network(to_batch(chunk, self.preprocessing))
                for pixels, plane in zip(chunk, probabilities):
                    results.append(_resize_probabilities(plane, pixels.shape[:2]))
        return results

    def to_dict(self) -> dict[str, Any]:
        tail = {name: tensor.clone() for name, tensor in self.backbone.state_dict().items()
                if _block_index(name) >= FROZEN_BLOCKS}
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "preprocessing": self.preprocessing.to_dict(),
            "class_names": list(self.class_names),
            "decoder": {name: tensor.clone() for name, tensor in self.decoder.state_dict().items()},
            "encoder_tail": tail,
            "copies": list(self.copies),
            "loss_history": [dict(entry) for entry in self.loss_history],
            "settings": dict(self.settings),
            "backbone": backbone_record(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segmenter:
        check_saved_model(data, format=_FORMAT, version=_FORMAT_VERSION, writer="Segmenter.to_dict()")
        names = list(data["class_names"])
        decoder = PixelDecoder(len(names))
        decoder.load_state_dict(data["decoder"])
        backbone = load_efficientnet_lite0()
        state = backbone.state_dict()
        state.update(data["encoder_tail"])
        backbone.load_state_dict(state)
        return cls(Preprocessing.from_dict(data["preprocessing"]), names, decoder, backbone=backbone,
                   copies=data["copies"], loss_history=data.get("loss_history", []),
                   settings=data.get("settings", {}))


def _block_index(name: str) -> int:
    if not name.startswith("_blocks."):
        return -1
    return int(name.split(".")[1])


def _resize_probabilities(plane: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    if tuple(plane.shape[-2:]) != tuple(size):
        plane = F.interpolate(plane[None], size=tuple(size), mode="bilinear", align_corners=False)[0]
    return plane.numpy().astype(np.float32)


# ---------------------------------------------------------------- training


def choose_input_size(shapes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    heights = np.array([shape[0] for shape in shapes], dtype=np.float64)
    widths = np.array([shape[1] for shape in shapes], dtype=np.float64)
    height, width = float(np.median(heights)), float(np.median(widths))
    scale = min(1.0, math.sqrt(_MAX_AREA / (height * width)))
    return _aligned(height * scale), _aligned(width * scale)


def _aligned(side: float) -> int:
    return max(_MIN_SIDE, int(math.ceil(side / _ALIGN)) * _ALIGN)


@dataclass
class _Cache:
    middle: list[torch.Tensor]  # per copy: (N, c, H/s, W/s) float16, the input of the tuned blocks
    positions: list[list[torch.Tensor]]  # per copy, per image: (P, 2) int64 rows and columns on the stride-2 grid
    frozen: list[list[torch.Tensor]]  # per copy, per image: (P, 96) float16
    targets: list[torch.Tensor]  # per image: (P, C) float32 class shares; the same for both copies
    defect: list[torch.Tensor]  # per image: (P,) bool, True where a defect share is above 0
    middle_stride: int = 8


def train_segmenter(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], class_names: Sequence[str], *,
                    input_size: tuple[int, int] | None = None, epochs: int | None = None,
                    progress: Progress | None = None, seed: int = 0) -> Segmenter:
    report = progress or (lambda done, total, message: None)
    names = list(class_names)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()

    shapes: list[tuple[int, int]] = []
    prep = fit_preprocessing(_recording_shapes(images, shapes), (_ALIGN * 2, _ALIGN * 2), seed=seed)
    size = tuple(input_size) if input_size is not None else choose_input_size(shapes)
    prep = replace(prep, input_size=(int(size[0]), int(size[1])))
    backbone = load_efficientnet_lite0()
    decoder = PixelDecoder(len(names))
    cache = _extract_cache(backbone, decoder, images, masks, prep, len(names), rng, report)
    logger.info("features cached in %.1f s", time.perf_counter() - started)

    chosen_epochs = epochs if epochs is not None else _EPOCHS
    history = _fit(backbone, decoder, cache, prep.input_size, chosen_epochs, rng, report)
    settings = {"input_size": list(prep.input_size), "epochs": chosen_epochs, "seed": seed}
    return Segmenter(prep, names, decoder, backbone=backbone, loss_history=history, settings=settings)


def _recording_shapes(images: Sequence[np.ndarray], shapes: list[tuple[int, int]]) -> Iterator[np.ndarray]:
    for index in range(len(images)):
        pixels = images[index]
        shapes.append(tuple(int(v) for v in pixels.shape[:2]))
        yield pixels


def _extract_cache(backbone: EfficientNetLite0, decoder: PixelDecoder, images: Sequence[np.ndarray],
                   masks: Sequence[np.ndarray], prep: Preprocessing, class_count: int, rng: np.random.Generator,
                   report: Callable[[int, int, str], None]) -> _Cache:
    cache = _Cache([[] for _ in _COPIES], [[] for _ in _COPIES], [[] for _ in _COPIES], [], [])
    sums = [torch.zeros(c, dtype=torch.float64) for c in LEVEL_CHANNELS]
    squares = [torch.zeros(c, dtype=torch.float64) for c in LEVEL_CHANNELS]
    counts = [0] * len(LEVEL_CHANNELS)
    with torch.inference_mode():
        for start in range(0, len(images), _EXTRACT_BATCH):
            indices = list(range(start, min(start + _EXTRACT_BATCH, len(images))))
            chunk = [images[i] for i in indices]
            sampled = []
            for i, pixels in zip(indices, chunk):
                shares = _class_shares(_resize_mask(np.asarray(masks[i]), pixels.shape[:2], prep.input_size, i),
                                       class_count)
                sampled.append(_sample_positions(shares, rng))
            batch = to_batch(chunk, prep)
            for position, name in enumerate(_COPIES):
                frozen, middle = encode_frozen(backbone, transform_copy(batch, name))
                cache.middle[position].append(middle.half().contiguous())
                levels = frozen + (encode_tail(backbone, middle) if start == 0 or position == 0 and start < 64 else [])
                for level, feature_map in enumerate(levels):
                    values = feature_map.double()
                    sums[level] += values.sum(dim=(0, 2, 3))
                    squares[level] += (values * values).sum(dim=(0, 2, 3))
                    counts[level] += values.shape[0] * values.shape[2] * values.shape[3]
                grid = tuple(frozen[0].shape[-2:])
                stacked = torch.cat([F.interpolate(m.float(), size=grid, mode="bilinear", align_corners=False)
                                     if tuple(m.shape[-2:]) != grid else m.float() for m in frozen], dim=1)
                for offset, (positions, shares, is_defect) in enumerate(sampled):
                    rows, columns = positions[:, 0], positions[:, 1]
                    if name == "horizontal_flip":
                        columns = grid[1] - 1 - columns
                    cache.positions[position].append(torch.stack([rows, columns], dim=1))
                    cache.frozen[position].append(stacked[offset][:, rows, columns].t().half().contiguous())
            for positions, shares, is_defect in sampled:
                cache.targets.append(shares)
                cache.defect.append(is_defect)
            report(indices[-1] + 1, len(images), "Extracting features")
    cache.middle = [torch.cat(parts) for parts in cache.middle]
    cache.middle_stride = prep.input_size[0] // cache.middle[0].shape[2]
    for level in range(len(LEVEL_CHANNELS)):
        mean = sums[level] / max(counts[level], 1)
        std = (squares[level] / max(counts[level], 1) - mean * mean).clamp_min(0).sqrt() + 1e-3
        getattr(decoder, f"mean{level}").copy_(mean.float().view(1, -1, 1, 1))
        getattr(decoder, f"std{level}").copy_(std.float().view(1, -1, 1, 1))
    return cache


def _resize_mask(mask: np.ndarray, image_shape: tuple[int, ...], input_size: tuple[int, int], index: int) -> np.ndarray:
    if mask.shape != tuple(image_shape):
        raise InvalidInputError(f"mask {index} has shape {mask.shape} but its image is {tuple(image_shape)}")
    plane = mask.astype(np.uint8)
    height, width = input_size
    if plane.shape != (height, width):
        plane = np.asarray(Image.fromarray(plane).resize((width, height), Image.Resampling.NEAREST))
    return plane


def _class_shares(mask: np.ndarray, class_count: int) -> torch.Tensor:
    """Return ``(C + 1, H/2, W/2)``: per 2x2 cell the share of each class, and last the share of labeled pixels."""
    target = torch.from_numpy(mask.astype(np.int64))
    valid = target != IGNORE_INDEX
    one_hot = F.one_hot(target.clamp_max(class_count - 1) * valid, class_count).permute(2, 0, 1).float() * valid
    planes = torch.cat([one_hot, valid[None].float()])
    return F.avg_pool2d(planes[None], 2, ceil_mode=True)[0]


def _sample_positions(shares: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    labeled = shares[-1]
    defect = shares[1:-1].sum(dim=0)
    is_defect = defect > 0
    near = (F.max_pool2d(is_defect[None, None].float(), 2 * _NEAR_DISTANCE + 1, 1, _NEAR_DISTANCE)[0, 0] > 0) & ~is_defect
    background = ~is_defect & (labeled > 0)
    chosen = []
    for pool, count in ((is_defect, _PER_DEFECT), (near & (labeled > 0), _NEAR), (background, _PER_BACKGROUND)):
        candidates = torch.nonzero(pool)
        if len(candidates):
            pick = rng.choice(len(candidates), size=min(count, len(candidates)), replace=False)
            chosen.append(candidates[torch.from_numpy(pick)])
    positions = torch.cat(chosen) if chosen else torch.zeros((0, 2), dtype=torch.long)
    rows, columns = positions[:, 0], positions[:, 1]
    targets = shares[:-1, rows, columns].t() / labeled[rows, columns].clamp_min(1e-6)[:, None]
    return positions, targets, is_defect[rows, columns]


def _fit(backbone: EfficientNetLite0, decoder: PixelDecoder, cache: _Cache, input_size: tuple[int, int],
         epochs: int, rng: np.random.Generator, report: Callable[[int, int, str], None]) -> list[dict[str, float]]:
    count = len(cache.targets)
    tail = [p for index, block in enumerate(backbone._blocks) if index >= FROZEN_BLOCKS for p in block.parameters()]
    groups = [{"params": list(decoder.parameters()), "lr": _DECODER_RATE}]
    if _FINE_TUNE:
        groups.append({"params": tail, "lr": _TAIL_RATE})
    for parameter in backbone.parameters():
        parameter.requires_grad_(False)
    if _FINE_TUNE:
        for parameter in tail:
            parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(groups, weight_decay=1e-4)
    steps_per_epoch = max(1, -(-count // _BATCH))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, [g["lr"] for g in groups],
                                                   total_steps=epochs * steps_per_epoch, pct_start=0.1)
    backbone.eval()  # batch-normalization statistics stay those of ImageNet
    decoder.train()
    history = []
    for epoch in range(epochs):
        order = rng.permutation(count)
        total, started = 0.0, time.perf_counter()
        for start in range(0, count, _BATCH):
            rows = order[start:start + _BATCH]
            loss = _step_loss(backbone, decoder, cache, rows, input_size, rng)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(rows)
        history.append({"epoch": epoch + 1, "train_loss": total / count})
        logger.info("epoch %d: loss %.4f in %.1f s", epoch + 1, total / count, time.perf_counter() - started)
        report(epoch + 1, epochs, "Training")
    backbone.eval()
    decoder.eval()
    for parameter in backbone.parameters():
        parameter.requires_grad_(False)
    return history


def _step_loss(backbone: EfficientNetLite0, decoder: PixelDecoder, cache: _Cache, rows: np.ndarray,
               input_size: tuple[int, int], rng: np.random.Generator) -> torch.Tensor:
    height, width = input_size
    crop_h, crop_w = min(height, _CROP), min(width, _CROP)
    middles, selections = [], []
    for row in rows:
        copy = int(rng.integers(len(_COPIES)))
        positions = cache.positions[copy][row]
        top, left = _choose_crop(positions, cache.defect[row], (height, width), (crop_h, crop_w), rng)
        stride = cache.middle_stride
        middles.append(cache.middle[copy][row][:, top // stride:(top + crop_h) // stride,
                                               left // stride:(left + crop_w) // stride])
        inside = ((positions[:, 0] >= top // 2) & (positions[:, 0] < (top + crop_h) // 2)
                  & (positions[:, 1] >= left // 2) & (positions[:, 1] < (left + crop_w) // 2))
        selections.append((copy, row, inside, top // 2, left // 2))
    middle = torch.stack(middles).float().contiguous(memory_format=torch.channels_last)
    with torch.set_grad_enabled(_FINE_TUNE):
        deep = encode_tail(backbone, middle)
    grid = (crop_h // 2, crop_w // 2)
    first = _frozen_levels()
    projected = [decoder.project[first + k](decoder.standardize(first + k, m)) for k, m in enumerate(deep)]
    summed, targets = [], []
    for index, (copy, row, inside, top, left) in enumerate(selections):
        positions = cache.positions[copy][row][inside]
        rows_, columns = positions[:, 0] - top, positions[:, 1] - left
        point = decoder.project_points(cache.frozen[copy][row][inside])
        for plane in projected:
            point = point + sample_bilinear(plane[index], rows_, columns, grid)
        summed.append(point)
        targets.append(cache.targets[row][inside])
    summed_points = torch.cat(summed)
    logits = decoder.head(summed_points[:, :, None, None])[:, :, 0, 0]
    target = torch.cat(targets)
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def sample_bilinear(feature_map: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor,
                    grid: tuple[int, int]) -> torch.Tensor:
    """Return ``(P, C)``: what ``F.interpolate(feature_map, size=grid, mode="bilinear")`` holds at the given cells.

    ``feature_map`` is ``(C, h, w)``; only the requested cells are computed.
    """
    top, bottom, row_weight = _taps(rows, feature_map.shape[-2], grid[0])
    left, right, column_weight = _taps(columns, feature_map.shape[-1], grid[1])
    upper = feature_map[:, top, left] * (1 - column_weight) + feature_map[:, top, right] * column_weight
    lower = feature_map[:, bottom, left] * (1 - column_weight) + feature_map[:, bottom, right] * column_weight
    return (upper * (1 - row_weight) + lower * row_weight).t()


def _taps(cells: torch.Tensor, source: int, target: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # PyTorch's bilinear rule without corner alignment: cell centres map to (i + 0.5) * source / target - 0.5,
    # clamped at 0 (aten/src/ATen/native/UpSample.h, area_pixel_compute_source_index).
    position = ((cells.double() + 0.5) * (source / target) - 0.5).clamp_min(0.0)
    low = position.floor().long().clamp_max(source - 1)
    high = (low + 1).clamp_max(source - 1)
    return low, high, (position - low).float()


def _choose_crop(positions: torch.Tensor, is_defect: torch.Tensor, size: tuple[int, int], crop: tuple[int, int],
                 rng: np.random.Generator) -> tuple[int, int]:
    corner = []
    defects = torch.nonzero(is_defect)[:, 0]
    target = None
    if len(defects) and rng.random() < _DEFECT_CROP_SHARE:
        target = positions[int(defects[int(rng.integers(len(defects)))])] * 2
    for axis in range(2):
        side, window = size[axis], crop[axis]
        if window >= side:
            corner.append(0)
            continue
        if target is not None:
            center = int(target[axis])
            first = max(0, -(-(center - window + 1) // _ALIGN))
            last = min(side - window, center) // _ALIGN
            corner.append(int(rng.integers(first, max(first, last) + 1)) * _ALIGN)
        else:
            corner.append(int(rng.integers(0, (side - window) // _ALIGN + 1)) * _ALIGN)
    return corner[0], corner[1]
