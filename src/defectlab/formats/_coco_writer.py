"""Write a COCO dataset: ``annotations.json`` and the images under ``images/``.

Boxes are written as ``bbox`` only, polygons as a one-polygon
``segmentation``, masks as a compressed RLE (``iscrowd`` 0). Each image entry
carries the displayed ``width`` and ``height``, plus the extra keys ``split``
and ``metadata`` when set; COCO tools ignore them and defectlab reads them
back. Unlabeled images are copied but not listed in ``images``, because
COCO tools read a listed image without annotations as defect-free. They are
listed instead under the extra top-level key ``unlabeled_images`` (file
name, split, metadata), so they read back unlabeled, never as ok, and keep
their split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from defectlab.formats._problems import ProblemLog
from defectlab.formats._raster import region_mask
from defectlab.formats._writing import (
    copy_image,
    defect_classes,
    label_kind,
    prepare_output_dir,
    region_box,
    target_path,
    write_json,
)
from defectlab.formats.export import ExportSet
from defectlab.formats.records import ClassSpec, ExportImage, Problem, Region
from defectlab.formats.rle import encode_rle

__all__ = ["ANNOTATION_FILE", "UNLABELED_KEY", "category_ids", "write_coco"]

ANNOTATION_FILE = "annotations.json"
UNLABELED_KEY = "unlabeled_images"


def category_ids(classes: list[ClassSpec]) -> dict[str, int]:
    """Keep the source's category ids when they are distinct whole numbers (0 included), else number from 1."""
    ids = [spec.external_id for spec in classes]
    if all(value is not None and value.lstrip("-").isdigit() for value in ids) and len(set(ids)) == len(ids):
        return {spec.name: int(str(spec.external_id)) for spec in classes}
    return {spec.name: index for index, spec in enumerate(classes, 1)}


def write_coco(export_set: ExportSet, out_dir: Path) -> list[Problem]:
    """Write ``images/<path>`` and one ``annotations.json`` for all images."""
    prepare_output_dir(out_dir)
    log = ProblemLog()
    classes = defect_classes(export_set)
    ids = category_ids(classes)
    document: dict[str, Any] = {
        "info": {"description": "exported by defectlab"},
        "images": [],
        "annotations": [],
        "categories": [{"id": ids[spec.name], "name": spec.name, "supercategory": "defect"} for spec in classes],
        UNLABELED_KEY: [],
    }

    for image in export_set.images:
        target = target_path(out_dir, f"images/{image.path}", log, image_path=image.path)
        if target is None or not copy_image(image, target, log):
            continue
        _add_image(document, image, ids, log)
    write_json(out_dir / ANNOTATION_FILE, document)
    return log.problems


def _add_image(document: dict[str, Any], image: ExportImage, ids: dict[str, int], log: ProblemLog) -> None:
    kind = label_kind(image)
    if kind == "class":
        log.warning(
            image.path,
            f"image-level class {image.label!r} has no COCO form; the image is copied but not listed, "
            "so it reads back unlabeled",
        )
    if kind in ("class", "unlabeled"):
        document[UNLABELED_KEY].append(_extra_keys(image, {"file_name": image.path}))
        return

    image_id = len(document["images"]) + 1
    entry = {"id": image_id, "file_name": image.path, "width": image.width, "height": image.height}
    document["images"].append(_extra_keys(image, entry))

    for region in image.regions:
        annotation = _annotation(region, image)
        if annotation is None:
            log.warning(image.path, f"{region.kind} of class {region.class_name!r} is empty; not written")
            continue
        annotation.update(id=len(document["annotations"]) + 1, image_id=image_id, category_id=ids[region.class_name])
        document["annotations"].append(annotation)


def _extra_keys(image: ExportImage, entry: dict[str, Any]) -> dict[str, Any]:
    if image.split:
        entry["split"] = image.split
    if image.metadata:
        entry["metadata"] = dict(image.metadata)
    return entry


def _annotation(region: Region, image: ExportImage) -> dict[str, Any] | None:
    box = region_box(region)
    if box is None:
        return None
    bbox = [box[0], box[1], box[2] - box[0], box[3] - box[1]]
    annotation: dict[str, Any] = {"bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0, "segmentation": []}
    if region.kind == "polygon" and region.polygon:
        annotation["segmentation"] = [list(region.polygon)]
        annotation["area"] = _polygon_area(region.polygon)
    elif region.kind == "mask" and region.mask is not None:
        mask = region_mask(region, image.width, image.height)
        annotation["segmentation"] = encode_rle(mask)
        annotation["area"] = int(np.count_nonzero(mask))
    return annotation


def _polygon_area(polygon: list[float]) -> float:
    xs = np.asarray(polygon[0::2])
    ys = np.asarray(polygon[1::2])
    return 0.5 * abs(float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))))
