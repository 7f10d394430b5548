"""Write an image-plus-mask dataset: images at their paths, index masks under ``masks/``.

``masks/<path without suffix>.png`` is an 8-bit index mask: 0 is
background and value ``n`` is the n-th class of ``classes.txt``. Boxes and
polygons are rasterized; where regions overlap, the later one wins. An ok
image gets an all-zero mask, an unlabeled image none.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from defectlab.formats._layout import CLASS_LIST_FILE
from defectlab.formats._problems import ProblemLog
from defectlab.formats._raster import region_mask
from defectlab.formats._writing import (
    copy_image,
    defect_classes,
    label_kind,
    prepare_output_dir,
    target_path,
    write_png_mask,
    write_text,
)
from defectlab.formats.export import ExportSet
from defectlab.formats.records import ExportImage, Problem

__all__ = ["MASK_FOLDER", "write_masks"]

MASK_FOLDER = "masks"

_MAX_CLASSES = 255


def write_masks(export_set: ExportSet, out_dir: Path) -> list[Problem]:
    """Write each image, its index mask, and ``classes.txt``.

    An image with only an image-level defect class gets no mask, so it
    reads back unlabeled, and a warning.
    """
    prepare_output_dir(out_dir)
    log = ProblemLog()
    classes = defect_classes(export_set)
    if len(classes) > _MAX_CLASSES:
        log.error(CLASS_LIST_FILE, f"{len(classes)} classes do not fit 8-bit index masks (at most {_MAX_CLASSES})")
        return log.problems
    values = {spec.name: index for index, spec in enumerate(classes, 1)}
    write_text(out_dir / CLASS_LIST_FILE, "".join(f"{spec.name}\n" for spec in classes))

    claimed: set[str] = set()
    for image in export_set.images:
        mask_rel = f"{MASK_FOLDER}/{PurePosixPath(image.path).with_suffix('.png')}"
        if mask_rel in claimed:
            log.error(image.path, f"another image already uses the mask {mask_rel!r}; image skipped")
            continue
        target = target_path(out_dir, image.path, log, image_path=image.path)
        if target is None or not copy_image(image, target, log):
            continue
        claimed.add(mask_rel)
        _write_mask(image, out_dir / mask_rel, values, log)
    return log.problems


def _write_mask(image: ExportImage, path: Path, values: dict[str, int], log: ProblemLog) -> None:
    kind = label_kind(image)
    if kind == "class":
        log.warning(
            image.path,
            f"image-level class {image.label!r} has no mask form; no mask written, so the image reads back unlabeled",
        )
    if kind in ("class", "unlabeled"):
        return

    mask = np.zeros((image.height, image.width), dtype=np.uint8)
    for region in image.regions:
        mask[region_mask(region, image.width, image.height)] = values[region.class_name]
    write_png_mask(path, mask)
