"""Training segmentation and detection projects: class maps or boxes from the labels, tiles for large images.

Both kinds of model are trained on the project's train images (or tiles of
them, see ``defectlab.training.tiling``). The image threshold is chosen on
the dev images, at the lowest cost of 5 overkills per escape. A dev image
is defective when it has a labeled region. The defect book's decision
rules at training time are stored with the model, so its answers do not
change when the book does; train again to use a new rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from defectlab.data.pixels import StoredClassMaps, StoredPixels
from defectlab.data.snapshot import SnapshotImage
from defectlab.errors import TrainingError
from defectlab.formats.records import OK_CLASS
from defectlab.training.autotune import TrainingPlan
from defectlab.training.curves import EpochCallback
from defectlab.training.tiling import TilingChoice, choose_tiling, defect_widths, sample_tiles
from defectlab.workspace import Workspace

__all__ = ["calibrate_segmentation", "fit_detection", "fit_segmentation", "region_class_names"]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


def region_class_names(images: Sequence[SnapshotImage]) -> list[str]:
    """Return ``ok`` and the classes of the images' regions, sorted.

    Raises:
        TrainingError: No image has a labeled region.
    """
    names = sorted({region["class"] for image in images for region in image.regions} - {OK_CLASS})
    if not names:
        raise TrainingError("no training image has a labeled region (mask, polygon or box); label the defects of "
                            "some images, or use a classification or anomaly project")
    return [OK_CLASS, *names]


def fit_segmentation(workspace: Workspace, train: list[SnapshotImage], dev: list[SnapshotImage], plan: TrainingPlan,
                     rules: dict[str, dict[str, Any]], progress: Progress | None,
                     on_epoch: EpochCallback | None = None) -> tuple[dict[str, Any], TrainingPlan]:
    """Train a segmentation model and return the fitted state for the artifact, and the plan with its reasons.

    ``plan.epochs`` of 0 lets the model choose; ``plan.input_size`` of ``(0, 0)`` likewise.
    """
    from defectlab.training.segmentation import choose_input_size, train_segmenter

    class_names = region_class_names(train)
    maps = StoredClassMaps(workspace.blobs, train, class_names)
    input_size = plan.input_size if all(plan.input_size) else choose_input_size([(i.height, i.width) for i in train])
    tiling = _tiling(train, maps, input_size)
    images, targets = _training_set(workspace, train, maps, tiling, plan.seed)
    model = train_segmenter(images, targets, class_names, input_size=tiling.tile or input_size, progress=progress,
                            seed=plan.seed, epochs=plan.epochs or None, on_epoch=on_epoch)
    state = {"kind": "segmentation", "model": model.to_dict(), "rules": rules,
             "tiling": _tiling_state(tiling)}
    threshold, outlines, reasons = calibrate_segmentation(workspace, dev, state, class_names)
    state["outlines"] = outlines
    plan = replace(plan, input_size=tuple(model.input_size), reasons=(*plan.reasons, tiling.reason, *reasons))
    return _fitted(state, class_names, threshold, model, train), plan


def fit_detection(workspace: Workspace, train: list[SnapshotImage], dev: list[SnapshotImage], plan: TrainingPlan,
                  rules: dict[str, dict[str, Any]], progress: Progress | None,
                  on_epoch: EpochCallback | None = None) -> tuple[dict[str, Any], TrainingPlan]:
    """Train a box detector and return the fitted state for the artifact, and the plan with its reasons."""
    from defectlab.training.detection import choose_input_size, regions_to_boxes, train_detector

    class_names = region_class_names(train)
    maps = StoredClassMaps(workspace.blobs, train, class_names)
    input_size = plan.input_size if all(plan.input_size) else choose_input_size([(i.height, i.width) for i in train])
    tiling = _tiling(train, maps, input_size)
    if tiling.tile is None:
        images: Sequence[np.ndarray] = _pixels(workspace, train)
        boxes = [regions_to_boxes(image.regions, class_names, masks=workspace.blobs.get) for image in train]
    else:
        images, targets = _training_set(workspace, train, maps, tiling, plan.seed)
        boxes = [_boxes_of_map(target) for target in targets]
    model = train_detector(images, boxes, class_names, input_size=tiling.tile or input_size, progress=progress,
                           seed=plan.seed, epochs=plan.epochs or None, on_epoch=on_epoch)
    state = {"kind": "detection", "model": model.to_dict(), "rules": rules, "tiling": _tiling_state(tiling)}
    threshold, reason = _threshold(workspace, dev, state, class_names)
    plan = replace(plan, input_size=tuple(model.input_size), reasons=(*plan.reasons, tiling.reason, reason))
    return _fitted(state, class_names, threshold, model, train), plan


def _pixels(workspace: Workspace, images: Sequence[SnapshotImage]) -> StoredPixels:
    return StoredPixels(workspace.blobs, [image.sha256 for image in images], [image.path for image in images])


def _tiling(train: list[SnapshotImage], maps: StoredClassMaps, input_size: tuple[int, int]) -> TilingChoice:
    """Measure the labeled defects only when the images are large enough for tiling to be in question."""
    sizes = [(image.height, image.width) for image in train]
    first = choose_tiling(sizes, [1.0], input_size)
    if first.tile is None:
        return first
    widths = [width for index in range(len(maps)) for width in defect_widths(maps[index])]
    return choose_tiling(sizes, widths, input_size)


def _tiling_state(tiling: TilingChoice) -> dict[str, Any] | None:
    return None if tiling.tile is None else {"tile": list(tiling.tile), "overlap": tiling.overlap}


def _training_set(workspace: Workspace, train: list[SnapshotImage], maps: StoredClassMaps, tiling: TilingChoice,
                  seed: int) -> tuple[Sequence[np.ndarray], Sequence[np.ndarray]]:
    """Return whole images and their class maps, or tiles of both sampled around defects and elsewhere."""
    pixels = _pixels(workspace, train)
    if tiling.tile is None:
        return pixels, maps
    rng = np.random.default_rng(seed)
    tiles: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    for index in range(len(train)):
        cut, cut_maps = sample_tiles(pixels[index], maps[index], tiling.tile, rng)
        tiles.extend(cut)
        targets.extend(cut_maps)
    logger.info("sampled %d tiles of %s px from %d images", len(tiles), tiling.tile, len(train))
    return tiles, targets


def _boxes_of_map(target: np.ndarray) -> list[tuple[int, float, float, float, float]]:
    """Return one training box per connected defect in a tile's class map."""
    from scipy import ndimage

    boxes = []
    for index in range(1, int(target.max()) + 1):
        labeled, _ = ndimage.label(target == index, structure=np.ones((3, 3), dtype=bool))
        for where in ndimage.find_objects(labeled):
            if where is not None:
                boxes.append((index, float(where[1].start), float(where[0].start), float(where[1].stop),
                              float(where[0].stop)))
    return boxes


def calibrate_segmentation(workspace: Workspace, dev: list[SnapshotImage], state: dict[str, Any],
                           class_names: list[str]) -> tuple[float, dict[str, float], list[str]]:
    """Choose the image threshold and each class's outline level in one pass over the dev images.

    A defective dev image without drawn regions has no mask to outline against,
    so it counts for the threshold only.

    Returns:
        The threshold, the outline level per class name (``OutlineCounts.choose``)
        and a plain sentence on each choice.
    """
    from defectlab.prediction.engines import build_region_engine
    from defectlab.training.outlines import OutlineCounts

    engine = build_region_engine({**state, "rules": {}}, class_names, threshold=1.0)
    maps = StoredClassMaps(workspace.blobs, dev, class_names)
    counts = OutlineCounts(class_names)
    scores = []
    for index, pixels in enumerate(_pixels(workspace, dev)):
        stitched = engine.stitch(pixels)
        scores.append(engine.decide(stitched)[0])
        if dev[index].regions or dev[index].label == OK_CLASS:
            counts.add(stitched.classes, stitched.defect, maps[index])

    threshold, reason = _image_threshold(dev, lambda: np.array(scores))
    outlines = counts.choose()
    return threshold, outlines, [reason, _outline_reason(outlines, threshold)]


def _outline_reason(outlines: dict[str, float], threshold: float) -> str:
    if not outlines:
        return (f"No dev image has a drawn defect, so defects are outlined at the threshold {threshold:.3f}; "
                "draw the defects of some dev images to have outlines fitted.")
    levels = ", ".join(f"{name} {level:.2f}" for name, level in outlines.items())
    return (f"Defects are outlined where their defect probability reaches the level that matched the dev masks "
            f"best: {levels}.")


def _threshold(workspace: Workspace, dev: list[SnapshotImage], state: dict[str, Any],
               class_names: list[str]) -> tuple[float, str]:
    """Choose the image threshold on the dev images; the rules are left out, so every region is scored."""
    from defectlab.prediction.engines import build_region_engine

    def scores() -> np.ndarray:
        engine = build_region_engine({**state, "rules": {}}, class_names, threshold=1.0)
        return engine.score(_pixels(workspace, dev), heatmaps=False).scores

    return _image_threshold(dev, scores)


def _image_threshold(dev: list[SnapshotImage], scores: Callable[[], np.ndarray]) -> tuple[float, str]:
    """Return the dev threshold and why, calling ``scores`` only when the dev images are a mix of good and defective."""
    from defectlab.training.detection import choose_threshold

    is_defective = np.array([bool(image.regions) for image in dev])
    if not dev or is_defective.all() or not is_defective.any():
        return 0.5, ("The dev images are not a mix of good and defective images, so the threshold is 0.5; "
                     "label more images to have it chosen.")
    threshold = choose_threshold(scores(), is_defective)
    return threshold, (f"The threshold {threshold:.3f} costs the least on the {len(dev)} dev images, counting an "
                       "escape as 5 overkills.")


def _fitted(state: dict[str, Any], class_names: list[str], threshold: float, model: Any,
            train: list[SnapshotImage]) -> dict[str, Any]:
    history = getattr(model, "loss_history", None) or None
    curves = None
    if history and isinstance(history[0], dict):
        curves = {key: [entry.get(key) for entry in history] for key in history[0] if key != "epoch"}
    return {"state": state, "class_names": class_names, "threshold": float(threshold),
            "preprocessing": model.preprocessing.to_dict(), "image_ids": [image.image_id for image in train],
            "loss_history": curves}
