"""Region figures of segmentation and detection models, beside the image-level escapes and overkills.

- Segmentation: pixel IoU and Dice per class (``defectlab.evaluation.masks``)
  and recall by defect size: a labeled defect (a connected group of its
  class map) is found when a predicted defect pixel above the threshold
  touches it.
- Detection: AP at IoU 0.5 and 0.5:0.95 per class and recall by defect size
  (``defectlab.evaluation.boxes``), from every box the model proposes.

Sizes use the labeled defect's pixel area, with COCO's bounds (``SIZE_BOUNDS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from defectlab.data.pixels import StoredClassMaps, StoredPixels
from defectlab.data.snapshot import SnapshotImage
from defectlab.evaluation.boxes import SIZE_BOUNDS, evaluate_boxes
from defectlab.evaluation.masks import evaluate_masks
from defectlab.prediction.predictor import Prediction
from defectlab.workspace.store import BlobStore

__all__ = ["measure_regions", "recall_by_defect_size", "region_lines"]


def measure_regions(blobs: BlobStore, artifact: dict[str, Any], images: Sequence[SnapshotImage],
                    pixels: StoredPixels, predictions: Sequence[Prediction]) -> dict[str, Any]:
    """Return the region figures of a segmentation or detection model on labeled images."""
    class_names = list(artifact["class_names"])
    if artifact["task"] == "segmentation":
        truths = StoredClassMaps(blobs, images, class_names)
        masks = evaluate_masks((truths[i] for i in range(len(images))), (p.mask for p in predictions), class_names)
        sizes = recall_by_defect_size([truths[i] for i in range(len(images))], [p.mask for p in predictions])
        return {"pixels": masks.to_dict(), "recall_by_size": sizes}
    return _boxes(blobs, artifact, images, pixels)


def recall_by_defect_size(truths: Sequence[np.ndarray], predicted: Sequence[np.ndarray]) -> dict[str, dict[str, Any]]:
    """Return per size the labeled defects and the share touched by a predicted defect pixel."""
    areas, found = [], []
    for truth, mask in zip(truths, predicted):
        labeled, count = ndimage.label(truth > 0, structure=np.ones((3, 3), dtype=bool))
        if count == 0:
            continue
        indices = np.arange(1, count + 1)
        areas.extend(ndimage.sum_labels(np.ones_like(labeled), labeled, indices))
        found.extend(ndimage.maximum((mask > 0).astype(np.uint8), labeled, indices) > 0)
    areas_array, found_array = np.asarray(areas, dtype=np.float64), np.asarray(found, dtype=bool)
    result = {}
    for size, (low, high) in SIZE_BOUNDS.items():
        inside = (areas_array >= low) & (areas_array < high)
        count = int(inside.sum())
        result[size] = {"defects": count, "recall": round(float(found_array[inside].mean()), 6) if count else None}
    return result


def _boxes(blobs: BlobStore, artifact: dict[str, Any], images: Sequence[SnapshotImage],
           pixels: StoredPixels) -> dict[str, Any]:
    """Measure every box the model proposes (not only those above the threshold), as AP needs."""
    from defectlab.prediction.engines import build_region_engine
    from defectlab.training.detection import regions_to_boxes

    class_names = list(artifact["class_names"])
    engine = build_region_engine(artifact["state"], class_names, threshold=0.0)
    proposed = engine.score(pixels, heatmaps=False).regions
    truths = [[{"class": class_names[index], "box": [x0, y0, x1, y1]}
               for index, x0, y0, x1, y1 in regions_to_boxes(image.regions, class_names, masks=blobs.get)]
              for image in images]
    result = evaluate_boxes(proposed, truths, class_names, threshold=float(artifact["threshold"])).to_dict()
    result.pop("image_level", None)
    return result


def region_lines(regions: dict[str, Any] | None) -> list[str]:
    """Return the pixel or box figures of ``measure_regions`` as plain lines, or none for other tasks."""
    if regions is None:
        return []
    lines = []
    if "pixels" in regions:
        pixels = regions["pixels"]
        lines.append(f"pixel IoU, mean over defect classes: {_figure(pixels['mean_defect_iou'])}")
        for name, iou in pixels["iou"].items():
            if name != "ok" and iou is not None:
                lines.append(f"  {name:<16} IoU {iou:.3f}  Dice {pixels['dice'][name]:.3f}")
    else:
        lines.append(f"AP at IoU 0.5 {_figure(regions['ap50'])}, at 0.5:0.95 {_figure(regions['ap50_95'])}")
    for size, row in regions["recall_by_size"].items():
        count = row.get("defects", row.get("truths"))
        if count:
            lines.append(f"  {size:<7} defects found {row['recall']:.1%} of {count}")
    return lines


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
