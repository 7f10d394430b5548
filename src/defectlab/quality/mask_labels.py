"""Suspicious masks: out-of-fold segmenters and ``cleanlab.segmentation``.

1. One segmenter per fold (``defectlab.training.segmentation.train_segmenter``)
   learns the class maps of the other folds and predicts the fold's images.
   The fold segmenters train for about ``_FOLD_STEPS`` steps of 8 images (half
   what the trainer aims at for the project's model), between ``_EPOCH_RANGE``
   epochs, on whole images. Their input size is the trainer's choice, shrunk
   to at most ``MAX_FOLD_INPUT_AREA`` pixels (``choose_fold_input_size``).
2. cleanlab needs one array for all images, so the probabilities and the class
   maps are brought to one grid: the network input averaged over square cells
   (a power of two of input pixels, at most ``MAX_GRID_CELLS`` cells per image).
   A cell's label is the class that covers most of it, so a defect narrower
   than half a cell is invisible to the search. Memory is
   ``N x classes x cells`` float32 values: about 26 MB for 320 images of 2 classes.
3. ``rank.get_label_quality_scores`` (softmin over the cells) gives each
   image's label quality, ``filter.find_label_issues`` marks the cells whose
   label the probabilities contradict by confident learning. An image is
   flagged when a connected group of at least ``MIN_ISSUE_CELLS`` such cells
   exists. The largest group names the place, the class given there and the
   class the segmenters see there.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from defectlab.data.pixels import StoredClassMaps, StoredPixels, Subset
from defectlab.data.snapshot import SnapshotImage
from defectlab.errors import InvalidInputError
from defectlab.formats.records import OK_CLASS
from defectlab.quality.region_labels import FOLDS, describe_box, region_issue
from defectlab.workspace import Workspace

__all__ = [
    "MAX_GRID_CELLS",
    "MIN_ISSUE_CELLS",
    "MaskLabelScores",
    "MAX_FOLD_INPUT_AREA",
    "choose_fold_input_size",
    "choose_grid",
    "find_suspicious_masks",
    "grid_labels",
    "out_of_fold_probabilities",
    "score_mask_labels",
]

logger = logging.getLogger(__name__)

MAX_GRID_CELLS = 128 * 128
"""Maximum cells per image handed to cleanlab."""

MAX_FOLD_INPUT_AREA = 640 * 256
"""Largest input area of a fold segmenter, in pixels: a quarter of the trainer's maximum.

A fold then costs about a quarter of a full-size one. The grid cleanlab reads
does not change for kolektorsdd (160 x 64 cells either way), but a defect only
one or two pixels wide may fade at the smaller input.
"""

MIN_ISSUE_CELLS = 4
"""Fewest connected cells with a label issue that flag an image; single cells are mostly region edges."""

_FOLD_STEPS = 300
_EPOCH_RANGE = (4, 20)
_SEGMENTER_BATCH = 8
_PREDICT_BATCH = 4


@dataclass(frozen=True)
class MaskLabelScores:
    """cleanlab's scores of every searched image on the common grid.

    Attributes:
        quality: Label quality per image, float64 ``(N,)`` in 0..1; low is suspicious.
        flagged: Flagged images, lowest quality first, int64 ``(M,)``.
        issues: Cells whose label the probabilities contradict, bool ``(N, h, w)``.
    """

    quality: np.ndarray
    flagged: np.ndarray
    issues: np.ndarray


def find_suspicious_masks(workspace: Workspace, images: Sequence[SnapshotImage], pixels: StoredPixels,
                          class_names: Sequence[str], folds: np.ndarray) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Return a ``suspicious_label`` issue per flagged image, worst first, and every image's label quality.

    The label quality is float64 ``(N,)`` in 0..1, low is suspicious; see the module docstring.
    """
    maps = StoredClassMaps(workspace.blobs, images, class_names)
    input_size = choose_fold_input_size([(image.height, image.width) for image in images])
    grid = choose_grid(input_size)
    pred_probs = out_of_fold_probabilities(pixels, maps, class_names, folds, input_size=input_size, grid=grid)
    labels = np.stack([grid_labels(maps[row], len(class_names), grid) for row in range(len(images))])
    scores = score_mask_labels(labels, pred_probs)

    issues = [_issue(images[row], labels[row], pred_probs[row], scores, row, class_names) for row in scores.flagged]
    return issues, scores.quality


def choose_fold_input_size(sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """Return the fold segmenters' input ``(height, width)``: the trainer's choice, shrunk to ``MAX_FOLD_INPUT_AREA``.

    Both sides shrink by the same factor and are rounded down to multiples of 32, at least 64.
    """
    from defectlab.training.segmentation import choose_input_size

    height, width = choose_input_size(sizes)
    shrink = min(1.0, math.sqrt(MAX_FOLD_INPUT_AREA / (height * width)))
    return tuple(max(64, 32 * int(side * shrink // 32)) for side in (height, width))


def choose_grid(input_size: tuple[int, int]) -> tuple[int, int]:
    """Return the grid ``(h, w)``: the input divided by the smallest power of two that fits ``MAX_GRID_CELLS``.

    Input sides are multiples of 32, so factors up to 32 divide them exactly.
    """
    height, width = input_size
    factor = 1
    while factor < 32 and (height // factor) * (width // factor) > MAX_GRID_CELLS:
        factor *= 2
    return height // factor, width // factor


def out_of_fold_probabilities(pixels: Sequence[np.ndarray], maps: Sequence[np.ndarray], class_names: Sequence[str],
                              folds: np.ndarray, *, input_size: tuple[int, int],
                              grid: tuple[int, int]) -> np.ndarray:
    """Predict every image with the segmenter trained on the other folds, averaged over the grid's cells.

    Args:
        pixels: Decoded images, read lazily.
        maps: Per image, its class map ``(H, W)``, as ``StoredClassMaps`` gives it.
        class_names: Class per index, ``ok`` first.
        folds: Fold per image, ``0..FOLDS-1``; every fold's complement needs a defect pixel.
        input_size: Network input ``(height, width)`` of every fold segmenter.
        grid: ``choose_grid(input_size)``.

    Returns:
        Class probabilities, float32 ``(N, C, grid[0], grid[1])``; each cell's C values sum to 1.
    """
    pred_probs = np.zeros((len(pixels), len(class_names), *grid), dtype=np.float32)
    for fold in range(FOLDS):
        train = np.flatnonzero(folds != fold).tolist()
        held_out = np.flatnonzero(folds == fold).tolist()
        steps_per_epoch = math.ceil(len(train) / _SEGMENTER_BATCH)
        epochs = int(np.clip(math.ceil(_FOLD_STEPS / steps_per_epoch), *_EPOCH_RANGE))
        pred_probs[held_out] = _fold_probabilities(pixels, maps, class_names, train, held_out, input_size, grid,
                                                   epochs, fold)
    return pred_probs


def _fold_probabilities(pixels: Sequence[np.ndarray], maps: Sequence[np.ndarray], class_names: Sequence[str],
                        train: list[int], held_out: list[int], input_size: tuple[int, int], grid: tuple[int, int],
                        epochs: int, fold: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    from defectlab.models.preprocess import to_batch
    from defectlab.training.segmentation import train_segmenter

    logger.info("fold %d of %d: training a segmenter on %d images for %d epochs", fold + 1, FOLDS, len(train), epochs)
    model = train_segmenter(Subset(pixels, train), Subset(maps, train), class_names, input_size=input_size,
                            epochs=epochs, seed=fold)
    network = model.module()
    factor = input_size[0] // grid[0]
    parts = []
    # The network's output at the input size is pooled at once, so no image's probabilities exist at its
    # own size, which for a large image would take gigabytes.
    with torch.inference_mode():
        for start in range(0, len(held_out), _PREDICT_BATCH):
            chunk = [pixels[row] for row in held_out[start:start + _PREDICT_BATCH]]
            probabilities = network(to_batch(chunk, model.preprocessing))
            parts.append(F.avg_pool2d(probabilities, factor).numpy().astype(np.float32))
    return np.concatenate(parts) if parts else np.zeros((0, len(class_names), *grid), dtype=np.float32)


def grid_labels(class_map: np.ndarray, class_count: int, grid: tuple[int, int]) -> np.ndarray:
    """Return the class covering most of each grid cell of a class map ``(H, W)``, int64 ``grid``.

    Each class's share of a cell comes from resizing its indicator plane with
    Pillow's box filter (area averaging). Ties go to the lower class index.

    Raises:
        InvalidInputError: A value of ``class_map`` is not a class index below ``class_count``.
    """
    class_map = np.asarray(class_map)
    if class_map.size and int(class_map.max()) >= class_count:
        raise InvalidInputError(f"class map value {int(class_map.max())} is invalid; values are class indices "
                                f"0..{class_count - 1}")
    height, width = grid
    shares = np.stack([np.asarray(Image.fromarray(((class_map == index) * 255).astype(np.uint8))
                                  .resize((width, height), Image.Resampling.BOX), dtype=np.float32)
                       for index in range(class_count)])
    return np.argmax(shares, axis=0).astype(np.int64)


def score_mask_labels(labels: np.ndarray, pred_probs: np.ndarray) -> MaskLabelScores:
    """Score every image's class map on the grid with cleanlab, and flag images as the module docstring describes.

    Args:
        labels: Class index per cell, int ``(N, h, w)``.
        pred_probs: Out-of-fold class probabilities, float ``(N, C, h, w)``.

    Raises:
        InvalidInputError: The shapes disagree or a label is outside ``0..C-1``.
    """
    from cleanlab.segmentation.filter import find_label_issues
    from cleanlab.segmentation.rank import get_label_quality_scores

    labels = np.asarray(labels)
    pred_probs = np.asarray(pred_probs, dtype=np.float32)
    if labels.ndim != 3 or pred_probs.ndim != 4 or labels.shape != (pred_probs.shape[0], *pred_probs.shape[2:]):
        raise InvalidInputError(f"labels of shape {labels.shape} and pred_probs of shape {pred_probs.shape} are "
                                "invalid; expected labels (N, h, w) and pred_probs (N, C, h, w)")
    if labels.size and (labels.min() < 0 or labels.max() >= pred_probs.shape[1]):
        raise InvalidInputError(f"labels contain {int(labels.min())}..{int(labels.max())}; every label must be a "
                                f"class index 0..{pred_probs.shape[1] - 1}")

    quality, _ = get_label_quality_scores(labels, pred_probs, verbose=False)
    issues = find_label_issues(labels, pred_probs, n_jobs=1, verbose=False)
    largest = np.array([_largest_group(plane).sum() for plane in issues])
    flagged = np.flatnonzero(largest >= MIN_ISSUE_CELLS)
    flagged = flagged[np.argsort(quality[flagged], kind="stable")]
    return MaskLabelScores(np.asarray(quality, dtype=np.float64), flagged.astype(np.int64), issues)


def _largest_group(plane: np.ndarray) -> np.ndarray:
    """Return the largest 8-connected group of True cells of ``(h, w)`` as a bool mask (all False when none)."""
    from scipy import ndimage

    groups, count = ndimage.label(plane, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return np.zeros(plane.shape, dtype=bool)
    sizes = np.bincount(groups.ravel())[1:]
    return groups == int(np.argmax(sizes)) + 1


def _issue(image: SnapshotImage, labels: np.ndarray, pred_probs: np.ndarray, scores: MaskLabelScores, row: int,
           class_names: Sequence[str]) -> dict[str, Any]:
    group = _largest_group(scores.issues[row])
    given = class_names[_most_common(labels[group])]
    seen_index = _most_common(np.argmax(pred_probs, axis=0)[group])
    seen = class_names[seen_index]
    probability = float(pred_probs[seen_index][group].mean())
    box = _group_box(group, image)
    mask_classes = sorted({class_names[index] for index in np.unique(labels).tolist()} - {OK_CLASS})
    where = describe_box(box)
    quality = float(scores.quality[row])
    common = {"box": box, "mask_classes": mask_classes}
    if given == OK_CLASS:
        detail = (f"no region is labeled at {where}, but the segmenters of the other folds see {seen} there "
                  f"(mean probability {probability:.2f})")
        return region_issue(image, quality, problem="missing_region", given="no defect", suggested=seen,
                            detail=detail, action=f"draw the {seen} region, or confirm that there is no defect",
                            **common)
    if seen == OK_CLASS:
        detail = (f"the {given} region at {where} is where the segmenters of the other folds see no defect "
                  f"(mean probability {probability:.2f})")
        return region_issue(image, quality, problem="extra_region", given=given, suggested="no defect",
                            detail=detail, action="remove or redraw the region, or confirm it", **common)
    detail = (f"the region at {where} is labeled {given}, but the segmenters of the other folds see {seen} there "
              f"(mean probability {probability:.2f})")
    return region_issue(image, quality, problem="wrong_class", given=given, suggested=seen, detail=detail,
                        action="correct the class of the region, or confirm it", **common)


def _most_common(values: np.ndarray) -> int:
    return int(np.argmax(np.bincount(np.asarray(values, dtype=np.int64).ravel())))


def _group_box(group: np.ndarray, image: SnapshotImage) -> list[float]:
    """Return ``[x_min, y_min, x_max, y_max]`` of a group of grid cells in the image's own pixels."""
    rows, columns = np.nonzero(group)
    scale_x, scale_y = image.width / group.shape[1], image.height / group.shape[0]
    return [columns.min() * scale_x, rows.min() * scale_y, (columns.max() + 1) * scale_x, (rows.max() + 1) * scale_y]
