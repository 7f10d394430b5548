"""Box detection: a small head trained on frozen EfficientNet-Lite0 features.

The head draws one defect map per class on the stride-8 grid, and each
connected patch of that map becomes a box. Boxes train the map through its
projections onto the two image axes, as in BoxInst (Tian et al., "BoxInst:
High-Performance Instance Segmentation with Box Annotations", CVPR 2021):

1. Features: the frozen backbone's blocks 4, 10 and 13 (strides 8, 16 and 32)
   are computed once per training image and per flipped copy and cached in
   float16, so only the head trains.
2. Head: each map is standardized and projected to ``_WIDTH`` channels by a
   1 x 1 convolution. The projections meet on the stride-16 grid, pass two
   3 x 3 convolutions there, and are upsampled to the stride-8 grid, where
   the stride-8 features are added back. A 3 x 3 convolution gives one
   logit per class and cell; its sigmoid is the defect map (the heatmap).
3. Loss: inside each box, the maximum of the map over the box's columns must
   follow, row by row, the share of the row that the box covers, and the
   same holds for columns (binary cross-entropy on both projections). Cells
   that no box of the class touches learn 0 with a focal loss (gamma 2).
   Cells inside a box get no target of their own, so the map is free to mark
   only the defect: the crack in a crack's box, not its whole background.
   Images without boxes teach 0 everywhere; they are the negatives.
4. Decoding: from each cell that is the maximum of its 3 x 3 neighbourhood
   and scores at least ``min_score`` (highest first), a region grows over the
   cells that score at least ``REGION_SHARE`` times that peak, stepping over
   gaps of up to ``REGION_REACH - 1`` cells, so a faint stretch of a crack
   does not split it into pieces. The region's extent, refined below a cell
   with the row and column projections, is the box, and the peak is its
   score. Boxes are scaled to the image's own pixels, clipped to it and
   thinned by per-class non-maximum suppression (IoU above 0.5).
   ``decode_boxes`` is plain NumPy, so the PyTorch path and an ONNX Runtime
   graph of ``Detector.module()`` give the same boxes.

A centre heatmap with size regression (CenterNet, TTFNet) was tried first on
the same features and head. In 5-fold cross-validation on the KolektorSDD
train and dev images (640 x 256 px input) it reached an AP at IoU 0.5 of
0.25 against 0.44 for this map with the same training: the cells near a
long crack's centre could not regress where its faint ends lie, while the
map only has to recognize the crack where it is.

Settings are chosen from the data, with no option to set:

* Input size: images (or tiles) up to ``MAX_INPUT_AREA`` pixels keep their
  native size, rounded to multiples of 32 pixels. Larger ones are shrunk to
  that area with their median aspect ratio kept.
* Epochs: enough for about ``_TARGET_STEPS`` optimizer steps, within
  ``_EPOCH_RANGE``.
* Augmentation: the four flipped copies (none, left-right, top-bottom, both),
  one drawn per image and epoch; flips never hide or cut a defect.

Known limit: two defects of one class that touch become one box.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from defectlab.errors import InvalidInputError, TrainingError
from defectlab.formats.records import OK_CLASS
from defectlab.models.efficientnet import (
    BLOCK_CHANNELS,
    EfficientNetLite0,
    backbone_record,
    check_saved_model,
    load_efficientnet_lite0,
)
from defectlab.models.preprocess import Preprocessing, fit_preprocessing, to_batch
from defectlab.training.curves import EpochCallback

__all__ = [
    "FEATURE_BLOCKS",
    "MAX_INPUT_AREA",
    "NMS_IOU",
    "REGION_REACH",
    "REGION_SHARE",
    "STRIDE",
    "Detector",
    "choose_epochs",
    "choose_input_size",
    "choose_threshold",
    "decode_boxes",
    "non_max_suppression",
    "regions_to_boxes",
    "train_detector",
]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
Box = tuple[int, float, float, float, float]
"""``(class_index, x_min, y_min, x_max, y_max)`` in an image's own pixels."""

FEATURE_BLOCKS = (4, 10, 13)
"""Backbone blocks the head reads (strides 8, 16 and 32)."""

STRIDE = 8
"""Input pixels per cell of the defect map."""

MAX_INPUT_AREA = 165_000
"""Largest input area in pixels (about 640 x 256); larger images are shrunk to it.

NOTE: sized by CPU cost, because the frozen backbone takes tens of milliseconds
per image at this area on 2 cores. A defect thinner than two or three input
pixels after shrinking is better served by cutting tiles at native resolution.
"""

NMS_IOU = 0.5
"""Boxes of one class that overlap a higher-scoring box by more than this IoU are removed."""

MAX_CANDIDATES = 100
"""Peaks decoded per image and class, highest first."""

REGION_SHARE = 0.3
"""A box's region is made of the cells scoring at least this share of its peak."""

REGION_REACH = 2
"""Cells up to this many steps apart (in rows and in columns) join one region."""

_FORMAT = "defectlab.detector"
_FORMAT_VERSION = 1
_WIDTH = 64
_LEARNING_RATE = 2e-3
_BATCH = 16
_TARGET_STEPS = 400
_EPOCH_RANGE = (20, 100)
_DEFAULT_THRESHOLD = 0.5
_BACKGROUND_WEIGHT = 0.3
"""Weight of the background loss against the projection loss.

Below 1 so that the background, most of every image, does not push faint
stretches of a thin crack under the threshold and split the crack's box.
"""
# NOTE: 0.3 and the four flipped copies at prediction were chosen on KolektorSDD
# without a recorded comparison; benchmarks/detection.py --eval dev can check them.
_COPIES = ("identity", "horizontal_flip", "vertical_flip", "rotate_180")


class _DetectionHead(nn.Module):
    """Map cached backbone features to one defect map per box class.

    The 3 x 3 convolutions that give context run on the stride-16 grid, a
    quarter of the stride-8 cells, which keeps training on a CPU to minutes.
    """

    def __init__(self, class_count: int) -> None:
        super().__init__()
        channels = [BLOCK_CHANNELS[block] for block in FEATURE_BLOCKS]
        self.lateral = nn.ModuleList(nn.Conv2d(count, _WIDTH, 1) for count in channels)
        self.tower = nn.Sequential(
            nn.ReLU(), nn.Conv2d(_WIDTH, _WIDTH, 3, padding=1), nn.ReLU(), nn.Conv2d(_WIDTH, _WIDTH, 3, padding=1),
        )
        self.detail = nn.Conv2d(channels[0], _WIDTH, 1)
        self.heatmap = nn.Conv2d(_WIDTH, class_count, 3, padding=1)
        for index, count in enumerate(channels):
            self.register_buffer(f"mean{index}", torch.zeros(1, count, 1, 1))
            self.register_buffer(f"std{index}", torch.ones(1, count, 1, 1))
        # A prior of 1 % defect per cell keeps the loss of the many empty cells small at the start.
        nn.init.constant_(self.heatmap.bias, -math.log(99.0))
        # NHWC convolutions ran about 1.6 times faster than NCHW here on a CPU.
        self.to(memory_format=torch.channels_last)

    def forward(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """Map block outputs (strides 8, 16, 32) to heatmaps ``(N, K, h, w)``: scores in 0..1."""
        return torch.sigmoid(self.forward_logits(maps))

    def forward_logits(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """Return ``forward`` before the sigmoid; the losses work on logits."""
        fine, middle, coarse = (self._standardize(index, feature) for index, feature in enumerate(maps))
        grid = middle.shape[-2:]
        fused = (self.lateral[1](middle)
                 + F.interpolate(self.lateral[2](coarse), size=grid, mode="bilinear", align_corners=False)
                 + F.avg_pool2d(self.lateral[0](fine), 2, ceil_mode=True))
        context = F.interpolate(self.tower(fused), size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return self.heatmap(F.relu(context + self.detail(fine)))

    def _standardize(self, index: int, feature: torch.Tensor) -> torch.Tensor:
        standardized = (feature.float() - getattr(self, f"mean{index}")) / getattr(self, f"std{index}")
        return standardized.contiguous(memory_format=torch.channels_last)

    def fit_standardization(self, cache: Sequence[torch.Tensor]) -> None:
        """Set each input's per-channel mean and standard deviation from cached maps ``(N, C, h, w)``."""
        for index, maps in enumerate(cache):
            values = maps.float()
            getattr(self, f"mean{index}").copy_(values.mean(dim=(0, 2, 3), keepdim=True))
            getattr(self, f"std{index}").copy_(values.std(dim=(0, 2, 3), keepdim=True) + 1e-3)


class _DetectionNetwork(nn.Module):
    """Backbone and head as one module: normalized batch ``(N, 3, H, W)`` to heatmaps ``(N, K, h, w)``.

    The heatmaps are the mean over the four flipped copies of each image, each
    flipped back (test-time augmentation), so one image costs four backbone passes.
    """

    def __init__(self, backbone: EfficientNetLite0, head: _DetectionHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        copies = torch.cat([_flip(batch, name) for name in _COPIES])
        maps = self.backbone.extract_feature_maps(copies.contiguous(memory_format=torch.channels_last), FEATURE_BLOCKS)
        heatmaps = self.head(maps)
        # Reshaping, not splitting by the batch size, keeps the batch dimension dynamic in an ONNX graph.
        per_copy = heatmaps.reshape(len(_COPIES), -1, *heatmaps.shape[1:])
        return sum(_flip(per_copy[index], name) for index, name in enumerate(_COPIES)) / len(_COPIES)


class Detector:
    """A trained box detector.

    Attributes:
        class_names: Class per index; index 0 is ``ok``, which is never a box class.
        preprocessing: The pixels-to-input rules shared by training, prediction and export.
        threshold: Box score above which an image is called defective.
        loss_history: One dict per epoch with ``epoch``, ``background_loss`` and ``projection_loss``.
    """

    def __init__(self, preprocessing: Preprocessing, class_names: Sequence[str], head: _DetectionHead, *,
                 threshold: float = _DEFAULT_THRESHOLD, loss_history: Sequence[dict[str, float]] = (),
                 backbone: EfficientNetLite0 | None = None) -> None:
        self.preprocessing = preprocessing
        self.class_names = list(class_names)
        self.head = head.eval()
        self.threshold = float(threshold)
        self.loss_history = [dict(entry) for entry in loss_history]
        self.backbone = backbone if backbone is not None else load_efficientnet_lite0()

    @property
    def input_size(self) -> tuple[int, int]:
        """Network input ``(height, width)`` in pixels."""
        return self.preprocessing.input_size

    @property
    def box_classes(self) -> list[str]:
        """Class names of the heatmap channels: ``class_names`` without ``ok``."""
        return self.class_names[1:]

    def module(self) -> nn.Module:
        """Return the network as one module for export.

        It maps a batch from ``to_batch`` (float32 ``(N, 3, height, width)`` at
        ``input_size``) to heatmaps, float32 ``(N, K, h, w)`` scores in 0..1 for
        the K box classes, with ``(h, w) = (height / STRIDE, width / STRIDE)``.
        ``decode`` turns one image's heatmaps into boxes.
        """
        return _DetectionNetwork(self.backbone, self.head).eval()

    def predict(self, images: Sequence[np.ndarray], *, min_score: float = 0.05) -> list[list[dict[str, Any]]]:
        """Find boxes in decoded images.

        Args:
            images: Pixels ``(H, W)`` or ``(H, W, 3)``, uint8 or uint16, of any size.
            min_score: Lowest box score returned, in 0..1.

        Returns:
            Per image, boxes ``{"class", "box", "score"}`` sorted by score, highest
            first. ``box`` is ``[x_min, y_min, x_max, y_max]`` in the image's own
            pixels, inside ``0..W`` and ``0..H``.
        """
        results: list[list[dict[str, Any]]] = []
        network = self.module()
        with torch.inference_mode():
            for start in range(0, len(images), _BATCH):
                chunk = [images[i] for i in range(start, min(start + _BATCH, len(images)))]
                heatmaps = network(to_batch(chunk, self.preprocessing)).numpy()
                results.extend(self.decode(maps, pixels.shape[:2], min_score=min_score)
                               for maps, pixels in zip(heatmaps, chunk))
        return results

    def decode(self, heatmaps: np.ndarray, image_size: tuple[int, int], *,
               min_score: float = 0.05) -> list[dict[str, Any]]:
        """Turn one image's heatmaps ``(K, h, w)`` into boxes; ``image_size`` is its ``(height, width)``.

        See ``decode_boxes``.
        """
        return decode_boxes(np.asarray(heatmaps), class_names=self.box_classes, input_size=self.input_size,
                            image_size=image_size, min_score=min_score)

    def image_scores(self, predictions: Sequence[Sequence[dict[str, Any]]]) -> np.ndarray:
        """Return each image's defect score: its highest box score, 0 without boxes, float64 ``(N,)``."""
        return np.array([max((box["score"] for box in boxes), default=0.0) for boxes in predictions])

    def to_dict(self) -> dict[str, Any]:
        """Return the model as tensors and plain values, for ``torch.save`` and ``torch.load(weights_only=True)``."""
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "preprocessing": self.preprocessing.to_dict(),
            "class_names": list(self.class_names),
            "head": {name: tensor.clone() for name, tensor in self.head.state_dict().items()},
            "threshold": self.threshold,
            "loss_history": [{key: float(value) for key, value in entry.items()} for entry in self.loss_history],
            "backbone": backbone_record(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Detector:
        """Rebuild a detector saved with ``to_dict``.

        Raises:
            InvalidInputError: The data is not a saved detector of this version,
                or the installed backbone weights differ.
        """
        check_saved_model(data, format=_FORMAT, version=_FORMAT_VERSION, writer="Detector.to_dict()")
        names = list(data["class_names"])
        head = _DetectionHead(len(names) - 1)
        head.load_state_dict(data["head"])
        return cls(Preprocessing.from_dict(data["preprocessing"]), names, head, threshold=data["threshold"],
                   loss_history=data.get("loss_history", []))


def decode_boxes(heatmaps: np.ndarray, *, class_names: Sequence[str], input_size: tuple[int, int],
                 image_size: tuple[int, int], min_score: float = 0.05) -> list[dict[str, Any]]:
    """Turn the heatmaps of one image into boxes in its own pixels, after per-class NMS.

    Args:
        heatmaps: Scores in 0..1, ``(K, h, w)``, one channel per name in
            ``class_names``. Cell ``(i, j)`` covers input pixels
            ``[j * STRIDE, (j + 1) * STRIDE)`` by ``[i * STRIDE, (i + 1) * STRIDE)``.
        class_names: Box class per channel.
        input_size: Network input ``(height, width)``.
        image_size: The image's ``(height, width)``; boxes are scaled to it and clipped.
        min_score: Lowest peak score that starts a box.

    Returns:
        Boxes ``{"class", "box": [x_min, y_min, x_max, y_max], "score"}``, highest score first.
    """
    height, width = image_size
    scale = np.array([width / input_size[1], height / input_size[0]] * 2)
    found = []
    for channel, name in enumerate(class_names):
        boxes, scores = _channel_boxes(heatmaps[channel], min_score)
        if not scores:
            continue
        boxes = np.clip(np.array(boxes) * STRIDE * scale, 0.0, [width, height, width, height])
        scores = np.array(scores)
        found.extend({"class": name, "box": [float(v) for v in boxes[i]], "score": float(scores[i])}
                     for i in non_max_suppression(boxes, scores, iou_threshold=NMS_IOU))
    return sorted(found, key=lambda box: -box["score"])


def _channel_boxes(heatmap: np.ndarray, min_score: float) -> tuple[list[list[float]], list[float]]:
    """Return boxes in cell units and their scores, one per region grown from a peak of ``heatmap`` ``(h, w)``."""
    peaks = (heatmap >= _neighbourhood_max(heatmap)) & (heatmap >= min_score)
    rows, columns = np.nonzero(peaks)
    order = np.argsort(-heatmap[rows, columns], kind="stable")[:MAX_CANDIDATES]
    taken = np.zeros(heatmap.shape, dtype=bool)
    boxes, scores = [], []
    for row, column in zip(rows[order], columns[order]):
        if taken[row, column]:
            continue
        peak = float(heatmap[row, column])
        region = _grow_region(heatmap, (int(row), int(column)), REGION_SHARE * peak, taken)
        boxes.append(_region_box(np.clip(heatmap / peak, 0.0, 1.0), region))
        scores.append(peak)
    return boxes, scores


def _neighbourhood_max(heatmap: np.ndarray) -> np.ndarray:
    """Return the maximum over each cell's 3 x 3 neighbourhood of ``(h, w)``."""
    padded = np.pad(heatmap, 1, constant_values=-np.inf)
    height, width = heatmap.shape
    result = np.full_like(heatmap, -np.inf)
    for dy in range(3):
        for dx in range(3):
            np.maximum(result, padded[dy:dy + height, dx:dx + width], out=result)
    return result


def _grow_region(heatmap: np.ndarray, seed: tuple[int, int], floor: float, taken: np.ndarray) -> np.ndarray:
    """Return ``(n, 2)`` cells reached from ``seed`` over untaken cells scoring at least ``floor``; mark them taken."""
    height, width = heatmap.shape
    steps = range(-REGION_REACH, REGION_REACH + 1)
    taken[seed] = True
    stack, region = [seed], []
    while stack:
        row, column = stack.pop()
        region.append((row, column))
        for dy in steps:
            for dx in steps:
                y, x = row + dy, column + dx
                if 0 <= y < height and 0 <= x < width and not taken[y, x] and heatmap[y, x] >= floor:
                    taken[y, x] = True
                    stack.append((y, x))
    return np.array(region)


def _region_box(share: np.ndarray, region: np.ndarray) -> list[float]:
    """Return ``[x_min, y_min, x_max, y_max]`` in cells of a region of a map scaled to its peak (0..1)."""
    (top, left), (bottom, right) = region.min(axis=0), region.max(axis=0)
    x_min, x_max = _edges(share[top:bottom + 1].max(axis=0), left, right)
    y_min, y_max = _edges(share[:, left:right + 1].max(axis=1), top, bottom)
    return [x_min, y_min, x_max, y_max]


def _edges(profile: np.ndarray, first: int, last: int) -> tuple[float, float]:
    """Return the low and high edge, in cells, of a region spanning cells ``first..last`` of a projection.

    The map learned each projection as the share of a cell that the box covers.
    So the end cells count by their share, at least half because they passed
    the region's floor, and the cells just outside add theirs, at most half.
    """
    before = min(float(profile[first - 1]), 0.5) if first > 0 else 0.0
    after = min(float(profile[last + 1]), 0.5) if last + 1 < len(profile) else 0.0
    low = first + 1 - max(float(profile[first]), 0.5) - before
    high = last + max(float(profile[last]), 0.5) + after
    return low, high


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, *, iou_threshold: float = NMS_IOU) -> list[int]:
    """Return the indices of the boxes that greedy NMS keeps, highest score first.

    A box is removed when its IoU with a kept, higher-scoring box is above
    ``iou_threshold``. Ties in score keep the earlier box.

    Args:
        boxes: ``(N, 4)`` as ``[x_min, y_min, x_max, y_max]``.
        scores: ``(N,)``.
    """
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept: list[int] = []
    while order:
        best, rest = order[0], np.asarray(order[1:], dtype=np.int64)
        kept.append(int(best))
        if rest.size == 0:
            break
        width = np.clip(np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(boxes[best, 0], boxes[rest, 0]), 0, None)
        height = np.clip(np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(boxes[best, 1], boxes[rest, 1]), 0, None)
        overlap = width * height
        iou = overlap / np.maximum(areas[best] + areas[rest] - overlap, 1e-12)
        order = [int(i) for i in rest[iou <= iou_threshold]]
    return kept


def choose_input_size(sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """Return the network input ``(height, width)`` for images of the given ``(height, width)``.

    Sides are multiples of 32 (the backbone's largest stride), at least 64.
    Images of at most ``MAX_INPUT_AREA`` pixels keep their median size; larger
    ones are shrunk to that area, keeping the median aspect ratio.

    Raises:
        InvalidInputError: ``sizes`` is empty.
    """
    if not sizes:
        raise InvalidInputError("no image size was given, so no input size can be chosen")
    height = float(np.median([size[0] for size in sizes]))
    width = float(np.median([size[1] for size in sizes]))
    shrink = min(1.0, math.sqrt(MAX_INPUT_AREA / (height * width)))
    return _round_side(height * shrink), _round_side(width * shrink)


def _round_side(side: float) -> int:
    return int(max(64, 32 * round(side / 32)))


def choose_epochs(image_count: int) -> int:
    """Return the epochs that give about ``_TARGET_STEPS`` steps of ``_BATCH`` images, within ``_EPOCH_RANGE``."""
    steps_per_epoch = max(1, math.ceil(image_count / _BATCH))
    low, high = _EPOCH_RANGE
    return int(min(high, max(low, round(_TARGET_STEPS / steps_per_epoch))))


def train_detector(images: Sequence[np.ndarray], boxes: Sequence[Sequence[Box]], class_names: Sequence[str], *,
                   input_size: tuple[int, int] | None = None, epochs: int | None = None,
                   progress: Progress | None = None, seed: int = 0,
                   on_epoch: EpochCallback | None = None) -> Detector:
    """Train a box detector on frozen backbone features.

    Args:
        images: Decoded pixels ``(H, W)`` or ``(H, W, 3)``, uint8 or uint16: whole
            images or tiles cut at native resolution. Read twice, one at a time,
            so a lazy sequence keeps memory bounded.
        boxes: Per image, ``(class_index, x_min, y_min, x_max, y_max)`` in that
            image's pixels. An image without boxes is a good image and teaches
            the detector where no defect is.
        class_names: Class per index; ``class_names[0]`` must be ``ok``, which is
            never a box class.
        input_size: Network input ``(height, width)``, multiples of 32;
            ``choose_input_size`` when None.
        epochs: Passes over the images; ``choose_epochs`` when None.
        progress: Called as ``progress(done, total, message)``.
        seed: Seed of the head's initialization and of the copy and batch order.
        on_epoch: Called with each epoch's ``loss_history`` entry.

    Raises:
        InvalidInputError: The lengths differ, ``class_names`` does not start
            with ``ok``, ``input_size`` is not a multiple of 32, or a box has an
            unknown class or no area inside its image.
        TrainingError: There is no image or no box.
    """
    names = _check_class_names(class_names)
    if len(images) != len(boxes):
        raise InvalidInputError(f"{len(images)} images but {len(boxes)} box lists were given; pass one list per image")
    if input_size is not None and any(int(side) % 32 or int(side) < 64 for side in input_size):
        raise InvalidInputError(f"input size {tuple(input_size)} is invalid; both sides must be multiples of 32, "
                                "at least 64")
    if len(images) == 0 or not any(len(listed) for listed in boxes):
        raise TrainingError("a detector needs at least one image with a labeled box; label defects with boxes, "
                            "polygons or masks first")
    report = progress or (lambda done, total, message: None)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    sizes: list[tuple[int, int]] = []
    prep = fit_preprocessing(_recording_sizes(images, sizes), (64, 64), seed=seed)
    prep = replace(prep, input_size=(int(input_size[0]), int(input_size[1])) if input_size else choose_input_size(sizes))
    checked = [_check_boxes(listed, size, len(names), index) for index, (listed, size) in
               enumerate(zip(boxes, sizes))]
    epochs = int(epochs) if epochs is not None else choose_epochs(len(images))
    total = len(images) + epochs
    logger.info("training a detector on %d images (%d boxes) at input %s for %d epochs", len(images),
                sum(len(listed) for listed in checked), prep.input_size, epochs)

    backbone = load_efficientnet_lite0()
    cache = _cache_features(backbone, images, prep, lambda done: report(done, total, "Extracting features"))
    copy_boxes = [_copy_boxes(checked, sizes, prep.input_size, copy) for copy in _COPIES]
    head = _DetectionHead(len(names) - 1)
    head.fit_standardization(cache[0])
    history = _train_head(head, cache, copy_boxes, rng, epochs,
                          lambda epoch: report(len(images) + epoch, total, "Training the detection head"), on_epoch)
    report(total, total, "Done")
    return Detector(prep, names, head, loss_history=history, backbone=backbone)


def _recording_sizes(images: Sequence[np.ndarray], sizes: list[tuple[int, int]]):  # noqa: ANN202 - a generator
    for index in range(len(images)):
        pixels = images[index]
        sizes.append((int(pixels.shape[0]), int(pixels.shape[1])))
        yield pixels


def _check_class_names(class_names: Sequence[str]) -> list[str]:
    names = list(class_names)
    if len(names) < 2 or names[0] != OK_CLASS:
        raise InvalidInputError(f"class names {names} are invalid; the first must be {OK_CLASS!r}, followed by at "
                                "least one defect class")
    return names


def _check_boxes(listed: Sequence[Box], size: tuple[int, int], class_count: int, image: int) -> np.ndarray:
    """Return the boxes of one image as float64 ``(B, 5)``, clipped to the image."""
    rows = np.asarray(listed, dtype=np.float64).reshape(-1, 5)
    height, width = size
    for row in rows:
        if not (1 <= row[0] < class_count and float(row[0]).is_integer()):
            raise InvalidInputError(f"box {row.tolist()} of image {image} has class index {row[0]:g}; box classes "
                                    f"are 1 to {class_count - 1} (0 is {OK_CLASS!r})")
    rows[:, 1:] = np.clip(rows[:, 1:], 0.0, [width, height, width, height])
    empty = (rows[:, 3] <= rows[:, 1]) | (rows[:, 4] <= rows[:, 2])
    if empty.any():
        raise InvalidInputError(f"box {rows[empty][0].tolist()} of image {image} has no area inside the "
                                f"{width} x {height} image; boxes are [x_min, y_min, x_max, y_max] in its pixels")
    return rows


def _cache_features(backbone: EfficientNetLite0, images: Sequence[np.ndarray], prep: Preprocessing,
                    report: Callable[[int], None]) -> list[list[torch.Tensor]]:
    """Return, per copy in ``_COPIES``, the float16 outputs of ``FEATURE_BLOCKS`` for all images."""
    parts: list[list[list[torch.Tensor]]] = [[[] for _ in FEATURE_BLOCKS] for _ in _COPIES]
    with torch.inference_mode():
        for start in range(0, len(images), _BATCH):
            batch = to_batch([images[i] for i in range(start, min(start + _BATCH, len(images)))], prep)
            for copy, name in enumerate(_COPIES):
                flipped = _flip(batch, name).contiguous(memory_format=torch.channels_last)
                for level, maps in enumerate(backbone.extract_feature_maps(flipped, FEATURE_BLOCKS)):
                    parts[copy][level].append(maps.half().contiguous())
            report(min(start + _BATCH, len(images)))
    return [[torch.cat(level) for level in copy] for copy in parts]


def _flip(batch: torch.Tensor, name: str) -> torch.Tensor:
    dims = {"identity": (), "horizontal_flip": (3,), "vertical_flip": (2,), "rotate_180": (2, 3)}[name]
    return batch.flip(dims) if dims else batch


def _copy_boxes(boxes: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]], input_size: tuple[int, int],
                copy: str) -> list[np.ndarray]:
    """Return each image's boxes ``(B, 5)`` in input pixels of the named flipped copy."""
    height, width = input_size
    result = []
    for rows, (image_height, image_width) in zip(boxes, sizes):
        scaled = rows.copy()
        scaled[:, [1, 3]] *= width / image_width
        scaled[:, [2, 4]] *= height / image_height
        if copy in ("horizontal_flip", "rotate_180"):
            scaled[:, [1, 3]] = width - scaled[:, [3, 1]]
        if copy in ("vertical_flip", "rotate_180"):
            scaled[:, [2, 4]] = height - scaled[:, [4, 2]]
        result.append(scaled)
    return result


def _train_head(head: _DetectionHead, cache: list[list[torch.Tensor]], copy_boxes: list[list[np.ndarray]],
                rng: np.random.Generator, epochs: int, report: Callable[[int], None],
                on_epoch: EpochCallback | None = None) -> list[dict[str, float]]:
    """Train for all ``epochs`` and keep the final weights; return one history entry per epoch.

    Each image is seen once per epoch, as one of its flipped copies drawn at
    random. The one-cycle schedule ends near a zero learning rate, so the
    final weights are settled without a dev set to pick an epoch.
    """
    count = len(copy_boxes[0])
    optimizer = torch.optim.AdamW(head.parameters(), lr=_LEARNING_RATE, weight_decay=1e-4)
    steps_per_epoch = math.ceil(count / _BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, _LEARNING_RATE, total_steps=epochs * steps_per_epoch,
                                                   pct_start=0.2)
    history: list[dict[str, float]] = []
    head.train()
    for epoch in range(epochs):
        order = rng.permutation(count)
        copies = rng.integers(0, len(_COPIES), count)
        totals = np.zeros(2)
        for start in range(0, count, _BATCH):
            rows, chosen = order[start:start + _BATCH], copies[start:start + _BATCH]
            maps = [torch.stack([cache[c][level][r] for c, r in zip(chosen, rows)])
                    for level in range(len(FEATURE_BLOCKS))]
            boxes = [copy_boxes[c][r] for c, r in zip(chosen, rows)]
            background, projection = _losses(head.forward_logits(maps), boxes)
            optimizer.zero_grad()
            (_BACKGROUND_WEIGHT * background + projection).backward()
            optimizer.step()
            schedule.step()
            totals += [background.item(), projection.item()]
        history.append({"epoch": epoch + 1, "background_loss": totals[0] / steps_per_epoch,
                        "projection_loss": totals[1] / steps_per_epoch})
        if on_epoch is not None:
            on_epoch(history[-1])
        report(epoch + 1)
    head.eval()
    return history


def _losses(logits: torch.Tensor, boxes: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the background and projection losses of heatmap logits ``(N, K, h, w)``, each per box.

    Args:
        logits: Heatmap logits of a batch.
        boxes: Per image of the batch, ``(B, 5)`` boxes in input pixels.
    """
    touched = torch.zeros(logits.shape, dtype=torch.bool)
    terms = []
    for image, rows in enumerate(boxes):
        for class_index, x_min, y_min, x_max, y_max in rows:
            row_share = _cover(y_min, y_max, logits.shape[2])
            column_share = _cover(x_min, x_max, logits.shape[3])
            (top, bottom), (left, right) = _span(row_share), _span(column_share)
            touched[image, int(class_index) - 1, top:bottom, left:right] = True
            inside = logits[image, int(class_index) - 1, top:bottom, left:right]
            terms.append(F.binary_cross_entropy_with_logits(inside.amax(dim=1), row_share[top:bottom])
                         + F.binary_cross_entropy_with_logits(inside.amax(dim=0), column_share[left:right]))
    count = max(1, len(terms))
    scores = torch.sigmoid(logits)
    background = -(scores**2 * F.logsigmoid(-logits))[~touched].sum() / count
    projection = torch.stack(terms).sum() / count if terms else logits.sum() * 0.0
    return background, projection


def _cover(low: float, high: float, cells: int) -> torch.Tensor:
    """Return the share of each of ``cells`` cells along one axis that ``[low, high)`` (input pixels) covers."""
    edges = np.arange(cells + 1, dtype=np.float64) * STRIDE
    share = np.clip(np.minimum(edges[1:], high) - np.maximum(edges[:-1], low), 0.0, STRIDE) / STRIDE
    return torch.from_numpy(share.astype(np.float32))


def _span(share: torch.Tensor) -> tuple[int, int]:
    """Return ``(first, stop)`` of the cells with a positive share."""
    covered = torch.nonzero(share > 0).flatten()
    return int(covered[0]), int(covered[-1]) + 1


def regions_to_boxes(regions: Sequence[dict[str, Any]], class_names: Sequence[str], *,
                     masks: Callable[[str], bytes] | None = None) -> list[Box]:
    """Turn a snapshot image's regions into training boxes ``(class_index, x_min, y_min, x_max, y_max)``.

    A box stays as it is and a polygon becomes the box around its points. A
    mask becomes one box per 8-connected group of its pixels, because one mask
    annotation may cover several separate defects. Regions of classes outside
    ``class_names`` are skipped.

    Args:
        regions: ``SnapshotImage.regions``: dicts with ``kind``, ``class``,
            ``geometry`` and ``mask_sha256``.
        class_names: Class per index, ``ok`` first.
        masks: Returns a mask PNG's bytes from its SHA-256 (``BlobStore.get``);
            needed only when a region is a mask.

    Raises:
        InvalidInputError: A region is a mask and ``masks`` is None.
    """
    index = {name: position for position, name in enumerate(class_names) if name != OK_CLASS}
    boxes: list[Box] = []
    for region in regions:
        if region["class"] not in index:
            continue
        class_index = index[region["class"]]
        if region["kind"] == "mask":
            if masks is None:
                raise InvalidInputError("a region is a mask but no mask reader was given; pass masks=blobs.get")
            boxes.extend((class_index, *box) for box in _mask_boxes(masks(region["mask_sha256"])))
        elif region["kind"] == "box":
            x_min, y_min, x_max, y_max = (float(value) for value in region["geometry"])
            boxes.append((class_index, x_min, y_min, x_max, y_max))
        else:
            points = np.asarray(region["geometry"], dtype=np.float64).reshape(-1, 2)
            x_min, y_min = points.min(axis=0)
            x_max, y_max = points.max(axis=0)
            boxes.append((class_index, float(x_min), float(y_min), float(x_max), float(y_max)))
    return boxes


def _mask_boxes(data: bytes) -> list[tuple[float, float, float, float]]:
    """Return the box around each 8-connected group of a mask PNG's pixels; a pixel spans ``[x, x + 1)``."""
    from scipy import ndimage

    from defectlab.data.regions import png_to_mask

    labeled, _ = ndimage.label(png_to_mask(data), structure=np.ones((3, 3), dtype=bool))
    return [(float(found[1].start), float(found[0].start), float(found[1].stop), float(found[0].stop))
            for found in ndimage.find_objects(labeled) if found is not None]


_LOWEST_THRESHOLD = 0.05


def choose_threshold(scores: np.ndarray, is_defective: np.ndarray, *, escape_cost: float = 5.0) -> float:
    """Return the image threshold with the lowest dev cost ``escape_cost * escapes + overkills``.

    An image is called defective when its score (``Detector.image_scores``) is
    above the threshold. Candidates are ``_DEFAULT_THRESHOLD`` and the midpoints
    between neighbouring dev scores from 0.05 up; of equal costs the one
    closest to the default wins, so a few dev images move it no further than they must.

    Args:
        scores: Dev images' scores, ``(N,)``.
        is_defective: Whether each dev image has a labeled box, ``(N,)``.
        escape_cost: Cost of one escape counted in overkills.
    """
    scores = np.asarray(scores, dtype=np.float64)
    is_defective = np.asarray(is_defective, dtype=bool)
    if not is_defective.any() or is_defective.all():
        return _DEFAULT_THRESHOLD

    points = np.unique(np.concatenate([scores, [_LOWEST_THRESHOLD, 1.0]]))
    points = points[points >= _LOWEST_THRESHOLD]
    candidates = np.concatenate([[_DEFAULT_THRESHOLD], (points[1:] + points[:-1]) / 2.0])
    good, defective = np.sort(scores[~is_defective]), np.sort(scores[is_defective])
    escapes = np.searchsorted(defective, candidates, side="right")
    overkills = good.size - np.searchsorted(good, candidates, side="right")
    cost = escape_cost * escapes + overkills
    best = np.flatnonzero(cost == cost.min())
    return float(candidates[best[np.argmin(np.abs(candidates[best] - _DEFAULT_THRESHOLD))]])
