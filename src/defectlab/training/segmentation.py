"""Semantic segmentation: EfficientNet-Lite0 with its deepest blocks fine-tuned and a per-pixel decoder.

The model gives every pixel a probability per class (``ok`` first, then the
defect classes):

1. The encoder is EfficientNet-Lite0 with its ImageNet weights. The stem and
   blocks 0 to ``TUNED_FROM - 1`` stay frozen; blocks ``TUNED_FROM`` to 14
   are fine-tuned. Their batch-normalization statistics stay those of
   ImageNet, because batches of 8 images are too small to estimate new ones.
2. The decoder reads six maps (``LEVEL_BLOCKS``): the normalized input
   itself, the stem output and the outputs of blocks 2, 4, 10 and 14 (strides
   1, 2, 4, 8, 16 and 32). Each map is standardized and projected to ``WIDTH``
   channels by a 1 x 1 convolution, upsampled bilinearly to the input grid, and
   the projections are summed. Two more 1 x 1 layers give the class logits of
   each pixel. The input level lets a defect one or two pixels wide keep its
   own width in the mask.
3. ``Segmenter.predict`` resizes the softmax probabilities from the input size
   to each image's own size.
4. Prediction averages the probabilities of the image and of its mirror image
   (flipped left to right). Training uses both as well.

Training is fast on a CPU because the decoder has no spatial convolution:
upsampling and a 1 x 1 convolution are both linear, so projecting a map and
then upsampling it equals upsampling and then projecting. The decoder can
therefore learn from a sample of pixel positions (``_sample_positions``)
instead of whole maps. The frozen part runs once per image and mirror image.
Its output is kept in float16 at stride 16 as the input of the tuned blocks,
and the frozen maps are kept only at the sampled positions. Each training step
runs the tuned blocks on 8 image crops and evaluates the decoder at their
sampled positions, with the cross-entropy against each pixel's class.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
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
    BLOCK_STRIDES,
    EfficientNetLite0,
    backbone_record,
    check_saved_model,
    load_efficientnet_lite0,
)
from defectlab.models.preprocess import Preprocessing, fit_preprocessing, to_batch
from defectlab.training.curves import EpochCallback
from defectlab.training.patches import transform_copy

__all__ = [
    "IGNORE_INDEX",
    "LEVEL_BLOCKS",
    "MAX_INPUT_AREA",
    "TUNED_FROM",
    "WIDTH",
    "PixelDecoder",
    "SegmentationNetwork",
    "Segmenter",
    "choose_input_size",
    "sample_bilinear",
    "train_segmenter",
]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

INPUT = -2
STEM = -1
LEVEL_BLOCKS = (INPUT, STEM, 2, 4, 10, 14)
"""Feature maps the decoder reads: the normalized input (``INPUT``), the stem output (``STEM``) and the outputs
of blocks 2, 4, 10 and 14, at strides 1, 2, 4, 8, 16 and 32."""

LEVEL_CHANNELS = tuple({INPUT: 3, STEM: 32}.get(block) or BLOCK_CHANNELS[block] for block in LEVEL_BLOCKS)

TUNED_FROM = 11
"""First fine-tuned block; blocks 11 to 14 (stride 32) are tuned, the rest of the encoder stays frozen."""

WIDTH = 64
"""Channels of the decoder's projections and hidden layer."""

MAX_INPUT_AREA = 1280 * 512
"""Largest input area ``choose_input_size`` picks, in pixels."""

_ALIGN = 32  # the encoder's largest stride; input sides are multiples of it
_MIN_SIDE = 64
_COPIES = ("identity", "horizontal_flip")
_FORMAT = "defectlab.segmenter"
_FORMAT_VERSION = 1
_BATCH = 8
_EXTRACT_BATCH = 4
_STATISTICS_IMAGES = 16
_CROP = 512
_DEFECT_CROP_SHARE = 0.5
_DECODER_RATE = 2e-3
_TUNED_RATE = 3e-4
_WEIGHT_DECAY = 1e-4
_TARGET_STEPS = 500
_MIN_EPOCHS = 20
_MAX_EPOCHS = 40
_MAX_STEPS = 2000
_MIN_LARGE_EPOCHS = 8
_PER_DEFECT = 600
_NEAR_DEFECT = 200
_PER_BACKGROUND = 300
_NEAR_DISTANCE = 16
"""Input pixels around a defect within which background cells count as near it."""


# ---------------------------------------------------------------- network


def encode_frozen(backbone: EfficientNetLite0, batch: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Run the frozen part on a normalized batch ``(N, 3, H, W)``.

    Returns:
        The frozen levels' feature maps, and the output of block ``TUNED_FROM - 1``,
        the input of the tuned blocks.
    """
    x = backbone.forward_stem(batch.contiguous(memory_format=torch.channels_last))
    levels = [batch, x] if INPUT in LEVEL_BLOCKS else [x]
    for index in range(TUNED_FROM):
        x = backbone._blocks[index](x)
        if index in LEVEL_BLOCKS:
            levels.append(x)
    return levels, x


def encode_tuned(backbone: EfficientNetLite0, middle: torch.Tensor) -> list[torch.Tensor]:
    """Run the tuned blocks on the frozen part's output; return the tuned levels' feature maps."""
    levels, x = [], middle
    for index in range(TUNED_FROM, LEVEL_BLOCKS[-1] + 1):
        x = backbone._blocks[index](x)
        if index in LEVEL_BLOCKS:
            levels.append(x)
    return levels


def _frozen_levels() -> int:
    return sum(1 for block in LEVEL_BLOCKS if block < TUNED_FROM)


def _finest_stride() -> int:
    return 1 if INPUT in LEVEL_BLOCKS else 2


class PixelDecoder(nn.Module):
    """Per-pixel decoder from the level feature maps to class logits on the grid of the finest level.

    Args:
        class_count: Number of classes, ``ok`` included.
    """

    def __init__(self, class_count: int) -> None:
        super().__init__()
        self.project = nn.ModuleList(nn.Conv2d(channels, WIDTH, 1, bias=False) for channels in LEVEL_CHANNELS)
        self.bias = nn.Parameter(torch.zeros(WIDTH))
        self.hidden = nn.Conv2d(WIDTH, WIDTH, 1)
        self.classify = nn.Conv2d(WIDTH, class_count, 1)
        for level, channels in enumerate(LEVEL_CHANNELS):
            self.register_buffer(f"mean{level}", torch.zeros(1, channels, 1, 1))
            self.register_buffer(f"std{level}", torch.ones(1, channels, 1, 1))

    def forward(self, levels: Sequence[torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
        """Map the level feature maps to logits ``(N, classes, grid[0], grid[1])``."""
        total = None
        for level, feature_map in enumerate(levels):
            projected = self.project_map(level, feature_map)
            if tuple(projected.shape[-2:]) != tuple(grid):
                projected = F.interpolate(projected, size=grid, mode="bilinear", align_corners=False)
            if total is None:
                total = self.bias.view(1, -1, 1, 1) + projected
            else:
                # In place: on a 512 x 512 tile, a new full-grid sum per level made the decoder about a quarter slower.
                total.add_(projected)
        return self.classify_sum(total)

    def project_map(self, level: int, feature_map: torch.Tensor) -> torch.Tensor:
        """Standardize and project one level's map ``(N, C_level, h, w)`` to ``(N, WIDTH, h, w)``."""
        mean, std = getattr(self, f"mean{level}"), getattr(self, f"std{level}")
        return self.project[level]((feature_map.float() - mean) / std)

    def project_points(self, values: torch.Tensor) -> torch.Tensor:
        """Project sampled frozen-level values ``(P, sum of frozen channels)`` to ``(P, WIDTH)``, bias included."""
        parts = torch.split(values.float(), list(LEVEL_CHANNELS[:_frozen_levels()]), dim=1)
        total = self.bias[None]
        for level, part in enumerate(parts):
            mean, std = getattr(self, f"mean{level}").view(1, -1), getattr(self, f"std{level}").view(1, -1)
            total = total + F.linear((part - mean) / std, self.project[level].weight[:, :, 0, 0])
        return total

    def classify_sum(self, summed: torch.Tensor) -> torch.Tensor:
        """Map summed projections ``(N, WIDTH, h, w)`` to logits ``(N, classes, h, w)``."""
        return self.classify(F.relu(self.hidden(F.relu(summed))))


class SegmentationNetwork(nn.Module):
    """Encoder, decoder and mirror-image averaging in one module, ready for ONNX export.

    Maps a normalized batch ``(N, 3, h, w)`` (``to_batch``) to class probabilities
    ``(N, C, h, w)`` that sum to 1 over the classes.
    """

    def __init__(self, backbone: EfficientNetLite0, decoder: PixelDecoder, copies: Sequence[str]) -> None:
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder
        self.copies = tuple(copies)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        size = (int(batch.shape[-2]), int(batch.shape[-1]))
        stride = _finest_stride()
        grid = (-(-size[0] // stride), -(-size[1] // stride))
        total = torch.zeros(())
        for name in self.copies:
            frozen, middle = encode_frozen(self.backbone, transform_copy(batch, name))
            logits = self.decoder(frozen + encode_tuned(self.backbone, middle), grid)
            probabilities = F.interpolate(torch.softmax(logits, dim=1), size=size, mode="bilinear",
                                          align_corners=False)
            total = total + transform_copy(probabilities, name)
        return total / len(self.copies)


def sample_bilinear(feature_map: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor,
                    grid: tuple[int, int]) -> torch.Tensor:
    """Return the values of ``F.interpolate(feature_map, size=grid, mode="bilinear")`` at the given cells.

    Only the requested cells are computed, so training evaluates the decoder
    at sampled positions exactly as prediction evaluates it everywhere.

    Args:
        feature_map: ``(C, h, w)``.
        rows: Int64 ``(P,)`` rows of cells on the ``grid``.
        columns: Int64 ``(P,)`` columns of cells on the ``grid``.
        grid: Size ``(height, width)`` that ``feature_map`` is upsampled to.

    Returns:
        ``(P, C)``.
    """
    top, bottom, row_weight = _taps(rows, int(feature_map.shape[-2]), grid[0])
    left, right, column_weight = _taps(columns, int(feature_map.shape[-1]), grid[1])
    upper = feature_map[:, top, left] * (1 - column_weight) + feature_map[:, top, right] * column_weight
    lower = feature_map[:, bottom, left] * (1 - column_weight) + feature_map[:, bottom, right] * column_weight
    return (upper * (1 - row_weight) + lower * row_weight).t()


def _taps(cells: torch.Tensor, source: int, target: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # PyTorch's bilinear rule without corner alignment maps target cell i to source
    # coordinate (i + 0.5) * source / target - 0.5, clamped at 0 (area_pixel_compute_source_index in ATen).
    position = ((cells.double() + 0.5) * (source / target) - 0.5).clamp_min(0.0)
    low = position.floor().long().clamp_max(source - 1)
    high = (low + 1).clamp_max(source - 1)
    return low, high, (position - low).float()


# ---------------------------------------------------------------- model


class Segmenter:
    """A trained segmentation model: per-pixel class probabilities for images of any size.

    Attributes:
        preprocessing: Input size and intensity window; the network input is
            ``to_batch(images, preprocessing)``.
        class_names: Class per probability plane; ``ok`` is first.
        loss_history: One dict per epoch with ``epoch`` and ``train_loss``.
        settings: What training chose: ``input_size``, ``epochs``, ``tuned_from``,
            ``copies`` and ``seed``.
    """

    def __init__(self, preprocessing: Preprocessing, class_names: Sequence[str], decoder: PixelDecoder, *,
                 backbone: EfficientNetLite0, loss_history: Sequence[dict[str, float]] = (),
                 settings: dict[str, Any] | None = None) -> None:
        self.preprocessing = preprocessing
        self.class_names = list(class_names)
        self.loss_history = [dict(entry) for entry in loss_history]
        self.settings = dict(settings or {})
        self._network = SegmentationNetwork(backbone.eval(), decoder.eval(), _COPIES).eval()

    @property
    def input_size(self) -> tuple[int, int]:
        """Network input ``(height, width)`` in pixels."""
        return self.preprocessing.input_size

    def module(self) -> nn.Module:
        """Return the network: normalized batch ``(N, 3, h, w)`` at ``input_size`` to probabilities ``(N, C, h, w)``.

        It uses only operations of ONNX opset 17, so ``torch.onnx.export`` can trace it.
        """
        return self._network

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Return per image the class probabilities, float32 ``(C, H, W)`` at the image's own size.

        Args:
            images: Decoded pixels, ``(H, W)`` or ``(H, W, 3)``, uint8 or uint16; read
                a few at a time.

        Returns:
            One array per image; the C values of a pixel sum to 1.
        """
        results = []
        with torch.inference_mode():
            for start in range(0, len(images), _EXTRACT_BATCH):
                chunk = [images[i] for i in range(start, min(start + _EXTRACT_BATCH, len(images)))]
                probabilities = self._network(to_batch(chunk, self.preprocessing))
                results.extend(_resize_probabilities(plane, pixels.shape[:2])
                               for pixels, plane in zip(chunk, probabilities))
        return results

    def defect_scores(self, probabilities: Sequence[np.ndarray]) -> np.ndarray:
        """Return per image the defect score: the largest ``1 - p(ok)`` of any pixel, float32 ``(N,)`` in [0, 1].

        Args:
            probabilities: Per image, ``(C, H, W)`` as ``predict`` returns them.
        """
        return np.array([float(1.0 - plane[0].min()) if plane.size else 0.0 for plane in probabilities],
                        dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        """Return the model as tensors and plain values, for ``torch.save`` and ``torch.load(weights_only=True)``.

        Only the tuned blocks of the encoder are stored; the frozen ones come from
        the installed pretrained weights, whose SHA-256 is recorded and checked.
        """
        encoder = {name: tensor.clone() for name, tensor in self._network.backbone.state_dict().items()
                   if _block_index(name) >= TUNED_FROM}
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "preprocessing": self.preprocessing.to_dict(),
            "class_names": list(self.class_names),
            "tuned_from": TUNED_FROM,
            "encoder": encoder,
            "decoder": {name: tensor.clone() for name, tensor in self._network.decoder.state_dict().items()},
            "loss_history": [dict(entry) for entry in self.loss_history],
            "settings": dict(self.settings),
            "backbone": backbone_record(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segmenter:
        """Rebuild a model saved with ``to_dict``.

        Raises:
            InvalidInputError: The data is not a saved segmenter of this version,
                or the installed backbone weights differ from those it was trained on.
        """
        check_saved_model(data, format=_FORMAT, version=_FORMAT_VERSION, writer="Segmenter.to_dict()")
        names = list(data["class_names"])
        decoder = PixelDecoder(len(names))
        decoder.load_state_dict(data["decoder"])
        backbone = load_efficientnet_lite0()
        state = backbone.state_dict()
        state.update(data["encoder"])
        backbone.load_state_dict(state)
        return cls(Preprocessing.from_dict(data["preprocessing"]), names, decoder, backbone=backbone,
                   loss_history=data.get("loss_history", []), settings=data.get("settings", {}))


def _block_index(name: str) -> int:
    """Return N for a parameter ``_blocks.N.…`` of the encoder, -1 for the stem and head."""
    return int(name.split(".")[1]) if name.startswith("_blocks.") else -1


def _resize_probabilities(plane: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    if tuple(plane.shape[-2:]) != tuple(size):
        plane = F.interpolate(plane[None], size=tuple(size), mode="bilinear", align_corners=False)[0]
    return plane.numpy().astype(np.float32)


# ---------------------------------------------------------------- training


def choose_input_size(shapes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """Choose the network input ``(height, width)`` from the training images' sizes.

    The input keeps the images' native resolution where it can, because a
    defect is often a few pixels wide. It is the median height and the median
    width, each rounded up to a multiple of 32 and to at least 64. When that
    area exceeds ``MAX_INPUT_AREA``, both sides shrink by the same factor until
    it fits, so larger images lose detail. Cutting them into tiles avoids that.

    Raises:
        InvalidInputError: ``shapes`` is empty.
    """
    if not shapes:
        raise InvalidInputError("no image size was given; pass the (height, width) of the training images")
    height = float(np.median([shape[0] for shape in shapes]))
    width = float(np.median([shape[1] for shape in shapes]))
    scale = min(1.0, math.sqrt(MAX_INPUT_AREA / (height * width)))
    rounded = [max(_MIN_SIDE, _ALIGN * math.ceil(side * scale / _ALIGN)) for side in (height, width)]
    while rounded[0] * rounded[1] > MAX_INPUT_AREA:
        longer = 0 if rounded[0] >= rounded[1] else 1
        rounded[longer] -= _ALIGN
    return rounded[0], rounded[1]


@dataclass
class _Survey:
    """Pixel counts per class and mask shapes from the first pass over the training data."""

    pixels_per_class: np.ndarray
    mask_shapes: list[tuple[int, ...]]
    shapes: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class _Cache:
    """Training data kept after the frozen part has run, per copy (image or mirror image) and image.

    Attributes:
        middle: Per copy, float16 ``(N, c, H/16, W/16)``: the input of the tuned blocks.
        positions: Per copy and image, int64 ``(P, 2)`` rows and columns of the
            sampled cells on the decoder grid (stride ``_finest_stride()``).
        values: Per copy and image, float16 ``(P, frozen channels)``: the frozen
            levels at those cells, upsampled as the decoder upsamples them.
        targets: Per image, float32 ``(P, C)``: each class's share of the cell's
            labeled pixels. The mirror image has the same targets.
        is_defect: Per image, bool ``(P,)``: cells with any defect pixel.
    """

    middle: list[Any]
    positions: list[list[torch.Tensor]]
    values: list[list[torch.Tensor]]
    targets: list[torch.Tensor] = field(default_factory=list)
    is_defect: list[torch.Tensor] = field(default_factory=list)

    @classmethod
    def empty(cls, copies: int) -> _Cache:
        return cls([[] for _ in range(copies)], [[] for _ in range(copies)], [[] for _ in range(copies)])


def train_segmenter(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], class_names: Sequence[str], *,
                    input_size: tuple[int, int] | None = None, epochs: int | None = None,
                    progress: Progress | None = None, seed: int = 0,
                    on_epoch: EpochCallback | None = None) -> Segmenter:
    """Train a segmentation model on images and their class masks.

    Args:
        images: Decoded pixels, ``(H, W)`` or ``(H, W, 3)``, uint8 or uint16: whole
            images or tiles cut at native resolution. Read twice, one batch at a
            time, so a lazy sequence (``StoredPixels``) keeps memory bounded.
        masks: Per image, an integer class-index map ``(H, W)`` of the image's size:
            0 is ``ok``, ``i`` is ``class_names[i]``, ``IGNORE_INDEX`` (255) marks
            pixels that teach nothing. Read twice, like ``images``.
        class_names: Class per index; the first must be ``ok``.
        input_size: Network input ``(height, width)``, multiples of 32; chosen by
            ``choose_input_size`` when None.
        epochs: Passes over the images; when None, ``_choose_epochs`` picks them
            from the number of images.
        progress: Called as ``progress(done, total, message)``.
        seed: Seed of every random choice, so equal inputs give equal models.
        on_epoch: Called with each epoch's ``loss_history`` entry.

    Raises:
        InvalidInputError: The counts, shapes or values of images and masks do not
            match, ``class_names`` does not start with ``ok``, or ``input_size``
            or ``epochs`` is invalid.
        TrainingError: No mask has a defect pixel.
    """
    names = _check_request(images, masks, class_names, input_size, epochs)
    report = progress or (lambda done, total, message: None)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    survey = _survey(masks, len(names), images_count=len(images))
    prep = fit_preprocessing(_recording_shapes(images, survey.shapes), (_MIN_SIDE, _MIN_SIDE), seed=seed)
    _check_mask_shapes(survey)
    prep = replace(prep, input_size=tuple(input_size) if input_size is not None else choose_input_size(survey.shapes))
    chosen_epochs = epochs if epochs is not None else _choose_epochs(len(images))
    total = len(images) + chosen_epochs
    logger.info("training a segmenter on %d images at %d x %d px for %d epochs; pixels per class %s",
                len(images), *prep.input_size, chosen_epochs, dict(zip(names, survey.pixels_per_class.tolist())))

    backbone = load_efficientnet_lite0()
    decoder = PixelDecoder(len(names))
    cache = _extract(backbone, decoder, images, masks, prep, rng, lambda done: report(done, total, "Extracting features"))
    history = _fit(backbone, decoder, cache, prep.input_size, chosen_epochs, rng,
                   lambda epoch: report(len(images) + epoch, total, "Training"), on_epoch)
    settings = {"input_size": list(prep.input_size), "epochs": chosen_epochs, "tuned_from": TUNED_FROM,
                "copies": list(_COPIES), "seed": seed}
    report(total, total, "Done")
    return Segmenter(prep, names, decoder, backbone=backbone, loss_history=history, settings=settings)


def _check_request(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], class_names: Sequence[str],
                   input_size: tuple[int, int] | None, epochs: int | None) -> list[str]:
    names = list(class_names)
    if len(images) == 0:
        raise InvalidInputError("no training image was given; pass at least one image with its mask")
    if len(masks) != len(images):
        raise InvalidInputError(f"{len(images)} images but {len(masks)} masks were given; pass one mask per image")
    if len(names) < 2 or names[0] != OK_CLASS or len(set(names)) != len(names):
        raise InvalidInputError(f"class names {names} are invalid; pass distinct names with '{OK_CLASS}' first "
                                "and at least one defect class")
    if len(names) > IGNORE_INDEX:
        raise InvalidInputError(f"{len(names)} classes are too many; masks hold at most {IGNORE_INDEX} classes")
    if input_size is not None and (len(input_size) != 2 or any(int(side) < _MIN_SIDE or int(side) % _ALIGN
                                                               for side in input_size)):
        raise InvalidInputError(f"input size {tuple(input_size)} is invalid; each side must be a multiple of "
                                f"{_ALIGN} and at least {_MIN_SIDE} pixels, or None to choose it from the images")
    if epochs is not None and not 1 <= int(epochs) <= 1000:
        raise InvalidInputError(f"{epochs} epochs is invalid; pass 1 to 1000, or None to choose")
    return names


def _survey(masks: Sequence[np.ndarray], class_count: int, *, images_count: int) -> _Survey:
    """Check every mask's values and count the pixels of each class; raise when no defect pixel exists."""
    counts = np.zeros(class_count, dtype=np.int64)
    shapes = []
    for index in range(images_count):
        mask = np.asarray(masks[index])
        values = np.unique(mask)
        bad = [int(value) for value in values if not (0 <= value < class_count or value == IGNORE_INDEX)]
        if mask.ndim != 2 or bad:
            raise InvalidInputError(
                f"mask {index} of shape {mask.shape} has class values {bad[:5]} outside 0..{class_count - 1}; "
                f"masks are (H, W) class-index maps with {IGNORE_INDEX} for ignored pixels"
            )
        counts += np.bincount(mask[mask != IGNORE_INDEX].astype(np.int64), minlength=class_count)[:class_count]
        shapes.append(mask.shape)
    if counts[1:].sum() == 0:
        raise TrainingError("the masks have no defect pixel; a segmentation model needs at least one image "
                            "whose mask marks a defect")
    missing = [index for index in range(1, class_count) if counts[index] == 0]
    if missing:
        logger.warning("defect classes %s have no pixel in the training masks; the model cannot learn them",
                       missing)
    return _Survey(counts, shapes)


def _check_mask_shapes(survey: _Survey) -> None:
    for index, (image_shape, mask_shape) in enumerate(zip(survey.shapes, survey.mask_shapes)):
        if tuple(mask_shape) != tuple(image_shape):
            raise InvalidInputError(f"mask {index} has shape {tuple(mask_shape)} but its image is {image_shape} "
                                    "(height, width); a mask must have its image's size")


def _recording_shapes(images: Sequence[np.ndarray], shapes: list[tuple[int, int]]) -> Iterator[np.ndarray]:
    for index in range(len(images)):
        pixels = images[index]
        shapes.append((int(pixels.shape[0]), int(pixels.shape[1])))
        yield pixels


def _choose_epochs(count: int) -> int:
    """Return enough epochs for ``_TARGET_STEPS`` steps of ``_BATCH`` images, between 20 and 40.

    The small share of defect pixels in each image needs many passes to be
    learned: on magnetic-tile's dev split (628 training images), 20 epochs
    raised the mean defect IoU from 0.56 to 0.67 over 8. Beyond ``_MAX_STEPS``
    steps (about 5 minutes on 2 CPU cores at 352 x 320 pixels, an estimate
    from that run) large datasets get fewer epochs, but at least 8.
    """
    steps_per_epoch = -(-count // _BATCH)
    epochs = min(_MAX_EPOCHS, max(_MIN_EPOCHS, math.ceil(_TARGET_STEPS / steps_per_epoch)))
    if epochs * steps_per_epoch > _MAX_STEPS:
        epochs = max(_MIN_LARGE_EPOCHS, _MAX_STEPS // steps_per_epoch)
    return int(epochs)


def _extract(backbone: EfficientNetLite0, decoder: PixelDecoder, images: Sequence[np.ndarray],
             masks: Sequence[np.ndarray], prep: Preprocessing, rng: np.random.Generator,
             report: Callable[[int], None]) -> _Cache:
    """Run the frozen part once per image and mirror image; keep what training needs (``_Cache``).

    The decoder's standardization statistics are set from the first images.
    """
    class_count = len(decoder.classify.weight)
    cache = _Cache.empty(len(_COPIES))
    statistics = _Statistics()
    with torch.inference_mode():
        for start in range(0, len(images), _EXTRACT_BATCH):
            indices = range(start, min(start + _EXTRACT_BATCH, len(images)))
            chunk = [images[i] for i in indices]
            samples = [_sample_positions(_class_shares(_mask_at_input(masks[i], pixels.shape[:2], prep.input_size, i),
                                                       class_count), rng) for i, pixels in zip(indices, chunk)]
            batch = to_batch(chunk, prep)
            for copy, name in enumerate(_COPIES):
                frozen, middle = encode_frozen(backbone, transform_copy(batch, name))
                cache.middle[copy].append(middle.half())
                if start < _STATISTICS_IMAGES:
                    statistics.add(frozen + encode_tuned(backbone, middle))
                _keep_values(cache, copy, name, frozen, [positions for positions, _, _ in samples])
            cache.targets.extend(targets for _, targets, _ in samples)
            cache.is_defect.extend(is_defect for _, _, is_defect in samples)
            report(indices[-1] + 1)
    cache.middle = [torch.cat(parts) for parts in cache.middle]
    statistics.store(decoder)
    return cache


def _keep_values(cache: _Cache, copy: int, name: str, frozen: list[torch.Tensor],
                 positions: list[torch.Tensor]) -> None:
    grid = (int(frozen[0].shape[-2]), int(frozen[0].shape[-1]))
    for offset, cells in enumerate(positions):
        rows, columns = cells[:, 0], cells[:, 1]
        if name == "horizontal_flip":
            columns = grid[1] - 1 - columns
        values = torch.cat([sample_bilinear(level[offset].float(), rows, columns, grid) for level in frozen], dim=1)
        cache.positions[copy].append(torch.stack([rows, columns], dim=1))
        cache.values[copy].append(values.half())


class _Statistics:
    """Per-channel mean and standard deviation of each level, accumulated over feature maps."""

    def __init__(self) -> None:
        self.sums = [torch.zeros(channels, dtype=torch.float64) for channels in LEVEL_CHANNELS]
        self.squares = [torch.zeros(channels, dtype=torch.float64) for channels in LEVEL_CHANNELS]
        self.counts = [0] * len(LEVEL_CHANNELS)

    def add(self, levels: Sequence[torch.Tensor]) -> None:
        for level, feature_map in enumerate(levels):
            values = feature_map.double()
            self.sums[level] += values.sum(dim=(0, 2, 3))
            self.squares[level] += (values * values).sum(dim=(0, 2, 3))
            self.counts[level] += values.shape[0] * values.shape[2] * values.shape[3]

    def store(self, decoder: PixelDecoder) -> None:
        for level in range(len(LEVEL_CHANNELS)):
            mean = self.sums[level] / self.counts[level]
            std = (self.squares[level] / self.counts[level] - mean * mean).clamp_min(0.0).sqrt() + 1e-3
            getattr(decoder, f"mean{level}").copy_(mean.float().view(1, -1, 1, 1))
            getattr(decoder, f"std{level}").copy_(std.float().view(1, -1, 1, 1))


def _mask_at_input(mask: np.ndarray, image_shape: tuple[int, ...], input_size: tuple[int, int],
                   index: int) -> np.ndarray:
    """Return the mask resized to the input size with nearest-neighbour sampling, uint8 ``(h, w)``."""
    mask = np.asarray(mask)
    if mask.shape != tuple(image_shape):
        raise InvalidInputError(f"mask {index} has shape {mask.shape} but its image is {tuple(image_shape)} "
                                "(height, width); a mask must have its image's size")
    plane = mask.astype(np.uint8)
    height, width = input_size
    if plane.shape != (height, width):
        plane = np.asarray(Image.fromarray(plane).resize((width, height), Image.Resampling.NEAREST))
    return plane


def _class_shares(mask: np.ndarray, class_count: int) -> torch.Tensor:
    """Return ``(C + 1, h/s, w/s)`` with ``s = _finest_stride()``.

    Per cell of s x s pixels, the share of each class, then the share of labeled pixels.
    """
    target = torch.from_numpy(mask.astype(np.int64))
    labeled = target != IGNORE_INDEX
    one_hot = F.one_hot(target * labeled, class_count).permute(2, 0, 1).float() * labeled
    stride = _finest_stride()
    return F.avg_pool2d(torch.cat([one_hot, labeled[None].float()])[None], stride, ceil_mode=True)[0]


def _sample_positions(shares: torch.Tensor,
                      rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pick the cells of the decoder grid that train the decoder for one image.

    Defect cells are few, so they are oversampled: up to ``_PER_DEFECT`` cells
    with a defect pixel, ``_NEAR_DEFECT`` background cells within
    ``_NEAR_DISTANCE`` cells of a defect (where the boundary is learned), and
    ``_PER_BACKGROUND`` other labeled cells.

    Returns:
        Cells ``(P, 2)`` (row, column), targets ``(P, C)`` that sum to 1, and
        ``(P,)`` True for cells with a defect pixel.
    """
    labeled = shares[-1] > 0
    is_defect = shares[1:-1].sum(dim=0) > 0
    near = _dilate(is_defect, _NEAR_DISTANCE // _finest_stride())
    pools = ((is_defect, _PER_DEFECT), (near & ~is_defect & labeled, _NEAR_DEFECT), (~near & labeled, _PER_BACKGROUND))
    chosen = []
    for pool, count in pools:
        candidates = torch.nonzero(pool)
        if len(candidates):
            picked = rng.choice(len(candidates), size=min(count, len(candidates)), replace=False)
            chosen.append(candidates[torch.from_numpy(np.sort(picked))])
    cells = torch.cat(chosen) if chosen else torch.zeros((0, 2), dtype=torch.long)
    rows, columns = cells[:, 0], cells[:, 1]
    targets = shares[:-1, rows, columns].t() / shares[-1, rows, columns][:, None]
    return cells, targets, is_defect[rows, columns]


def _dilate(plane: torch.Tensor, distance: int) -> torch.Tensor:
    """Return where a True cell of ``plane`` lies within ``distance`` cells (Chebyshev distance), bool ``(h, w)``."""
    # A square maximum filter equals a row filter followed by a column filter, and
    # the two passes cost 2k instead of k * k comparisons per cell for a k x k filter.
    values = plane[None, None].float()
    values = F.max_pool2d(values, (1, 2 * distance + 1), 1, (0, distance))
    values = F.max_pool2d(values, (2 * distance + 1, 1), 1, (distance, 0))
    return values[0, 0] > 0


def _fit(backbone: EfficientNetLite0, decoder: PixelDecoder, cache: _Cache, input_size: tuple[int, int],
         epochs: int, rng: np.random.Generator, report: Callable[[int], None],
         on_epoch: EpochCallback | None = None) -> list[dict[str, float]]:
    """Train the decoder and the tuned blocks for all epochs; return one history entry per epoch."""
    tuned = [parameter for index in range(TUNED_FROM, len(backbone._blocks))
             for parameter in backbone._blocks[index].parameters()]
    for parameter in backbone.parameters():
        parameter.requires_grad_(False)
    for parameter in tuned:
        parameter.requires_grad_(True)
    groups = [{"params": list(decoder.parameters()), "lr": _DECODER_RATE}, {"params": tuned, "lr": _TUNED_RATE}]
    optimizer = torch.optim.AdamW(groups, weight_decay=_WEIGHT_DECAY)
    steps = epochs * -(-len(cache.targets) // _BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, [_DECODER_RATE, _TUNED_RATE], total_steps=steps,
                                                   pct_start=0.1)

    backbone.eval()  # keeps ImageNet's batch-normalization statistics
    decoder.train()
    history = []
    for epoch in range(epochs):
        started, total = time.perf_counter(), 0.0
        order = rng.permutation(len(cache.targets))
        for start in range(0, len(order), _BATCH):
            loss = _batch_loss(backbone, decoder, cache, order[start:start + _BATCH], input_size, rng)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(order[start:start + _BATCH])
        history.append({"epoch": epoch + 1, "train_loss": total / len(order)})
        logger.info("epoch %d of %d: loss %.4f in %.1f s", epoch + 1, epochs, total / len(order),
                    time.perf_counter() - started)
        if on_epoch is not None:
            on_epoch(history[-1])
        report(epoch + 1)

    for parameter in tuned:
        parameter.requires_grad_(False)
    decoder.eval()
    return history


def _batch_loss(backbone: EfficientNetLite0, decoder: PixelDecoder, cache: _Cache, rows: np.ndarray,
                input_size: tuple[int, int], rng: np.random.Generator) -> torch.Tensor:
    """Return the soft cross-entropy of the decoder at the sampled cells of a batch of images.

    Images larger than ``_CROP`` are cropped, around a defect cell half of the
    time, so a step's cost does not grow with the image size.
    """
    crop = (min(input_size[0], _CROP), min(input_size[1], _CROP))
    stride = input_size[0] // int(cache.middle[0].shape[2])
    chosen = []
    for row in rows:
        copy = int(rng.integers(len(_COPIES)))
        top, left = _choose_crop(cache.positions[copy][row], cache.is_defect[row], input_size, crop, rng)
        chosen.append((copy, row, top, left))
    middle = torch.stack([cache.middle[copy][row][:, top // stride:(top + crop[0]) // stride,
                                                  left // stride:(left + crop[1]) // stride]
                          for copy, row, top, left in chosen]).float().contiguous(memory_format=torch.channels_last)
    tuned_maps = [decoder.project_map(_frozen_levels() + k, level)
                  for k, level in enumerate(encode_tuned(backbone, middle))]

    finest = _finest_stride()
    grid = (crop[0] // finest, crop[1] // finest)
    sums, targets = [], []
    for index, (copy, row, top, left) in enumerate(chosen):
        cells = cache.positions[copy][row]
        first_row, first_column = top // finest, left // finest
        inside = ((cells[:, 0] >= first_row) & (cells[:, 0] < first_row + grid[0])
                  & (cells[:, 1] >= first_column) & (cells[:, 1] < first_column + grid[1]))
        rows_in, columns_in = cells[inside, 0] - first_row, cells[inside, 1] - first_column
        summed = decoder.project_points(cache.values[copy][row][inside])
        for projected in tuned_maps:
            summed = summed + sample_bilinear(projected[index], rows_in, columns_in, grid)
        sums.append(summed)
        targets.append(cache.targets[row][inside])
    logits = decoder.classify_sum(torch.cat(sums)[:, :, None, None])[:, :, 0, 0]
    return -(torch.cat(targets) * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def _choose_crop(cells: torch.Tensor, is_defect: torch.Tensor, size: tuple[int, int], crop: tuple[int, int],
                 rng: np.random.Generator) -> tuple[int, int]:
    """Return the top-left corner, in input pixels and on the 32-pixel grid, of a training crop."""
    defects = torch.nonzero(is_defect)[:, 0]
    around = None
    if len(defects) and rng.random() < _DEFECT_CROP_SHARE:
        around = cells[int(defects[int(rng.integers(len(defects)))])] * _finest_stride()
    corner = []
    for axis in range(2):
        free = (size[axis] - crop[axis]) // _ALIGN
        if around is None:
            corner.append(int(rng.integers(0, free + 1)) * _ALIGN)
            continue
        # The crop must contain the defect pixel: start <= centre < start + crop.
        first = max(0, -(-(int(around[axis]) - crop[axis] + 1) // _ALIGN))
        last = min(free, int(around[axis]) // _ALIGN)
        corner.append(int(rng.integers(first, max(first, last) + 1)) * _ALIGN)
    return corner[0], corner[1]
