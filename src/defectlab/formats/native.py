"""defectlab's own dataset format, which keeps everything a project holds.

Layout::

    defectlab.json            classes, images, labels, splits, metadata, regions
    images/<path>             each image's original bytes, under its project path (a path
                              that starts with images/ is not nested a second time)
    masks/<path>.<n>.png      mask region n of that image: 8-bit grayscale, 0 or 255

``defectlab.json``::

    {"format": "defectlab", "version": 1,
     "classes": [{"name": "scratch", "external_id": "0"}, ...],
     "images": [{"path": "lineA/0001.png", "file": "images/lineA/0001.png",
                 "width": 640, "height": 480, "split": "train" | "dev" | "test" | null,
                 "label": "ok" | "<class>" | null, "labeled": true,
                 "metadata": {"station": "3"},
                 "regions": [{"kind": "box", "class": "scratch", "box": [x_min, y_min, x_max, y_max]},
                             {"kind": "polygon", "class": "dent", "polygon": [x1, y1, ...]},
                             {"kind": "mask", "class": "dent", "mask": "masks/lineA/0001.png.2.png"}]}]}

Coordinates are pixels of the displayed image; ``width`` and ``height`` are
its displayed size. ``labeled`` separates an explicit ok (``label`` "ok")
from an unlabeled image (``labeled`` false).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from defectlab.formats._problems import ProblemLog, Reporter
from defectlab.formats._raster import region_mask
from defectlab.formats._shapes import check_mask, check_pixel_box, check_pixel_polygon
from defectlab.formats._writing import copy_image, prepare_output_dir, target_path, write_json, write_png_mask
from defectlab.formats.export import ExportSet
from defectlab.formats.masks_values import read_mask_file
from defectlab.formats.records import SPLITS, ClassSpec, ExportImage, ImportBatch, ImportedImage, Problem, Region

__all__ = ["MANIFEST", "VERSION", "read_native", "write_native"]

logger = logging.getLogger(__name__)

FORMAT = "native"
MANIFEST = "defectlab.json"
VERSION = 1


def write_native(export_set: ExportSet, out_dir: Path) -> list[Problem]:
    """Write every image, label, region, split and metadata value without loss."""
    prepare_output_dir(out_dir)
    log = ProblemLog()
    paths = {image.path for image in export_set.images}
    entries = []
    for image in export_set.images:
        file_rel = _file_path(image.path, paths)
        target = target_path(out_dir, file_rel, log, image_path=image.path)
        if target is None or not copy_image(image, target, log):
            continue
        entries.append(_image_entry(image, file_rel, out_dir))

    document = {
        "format": "defectlab",
        "version": VERSION,
        "classes": [{"name": spec.name, "external_id": spec.external_id} for spec in export_set.classes],
        "images": entries,
    }
    write_json(out_dir / MANIFEST, document)
    return log.problems


def read_native(root: Path) -> ImportBatch:
    """Read a folder written by ``write_native`` (or the ``defectlab.json`` in it).

    Problems:
        * error: a manifest that cannot be parsed or has another version.
        * error: an image entry without ``path``, or whose file is missing.
        * error: a region of unknown kind, with invalid coordinates, or with
          an unreadable or empty mask.
        * warning: clipped shapes and one-pixel mask islands.
    """
    root = root.parent if root.is_file() else root
    log = ProblemLog()
    document = _load_manifest(root, log)
    classes = [
        ClassSpec(str(entry["name"]), external_id=entry.get("external_id"))
        for entry in document.get("classes", [])
        if isinstance(entry, dict) and entry.get("name")
    ]
    images = []
    for index, entry in enumerate(document.get("images", [])):
        image = _read_image(entry, root, log.at(MANIFEST).about(f"image {index}"), log)
        if image is not None:
            images.append(image)
    logger.info("read %d images from %s", len(images), root)
    return ImportBatch(FORMAT, classes, images, log.problems)


def _file_path(path: str, paths: set[str]) -> str:
    """Place an image under ``images/``, without doubling a leading ``images/`` folder.

    ``images/train/a.png`` stays as it is unless another image has the path
    ``train/a.png``, which takes that file name.
    """
    first, _, rest = path.partition("/")
    if first == "images" and rest and rest not in paths:
        return path
    return f"images/{path}"


def _image_entry(image: ExportImage, file_rel: str, out_dir: Path) -> dict[str, Any]:
    regions = []
    for number, region in enumerate(image.regions):
        entry: dict[str, Any] = {"kind": region.kind, "class": region.class_name}
        if region.kind == "box" and region.box is not None:
            entry["box"] = [float(value) for value in region.box]
        elif region.kind == "polygon" and region.polygon is not None:
            entry["polygon"] = [float(value) for value in region.polygon]
        elif region.kind == "mask" and region.mask is not None:
            mask_rel = f"masks/{image.path}.{number}.png"
            mask = region_mask(region, image.width, image.height)
            write_png_mask(out_dir / mask_rel, mask.astype(np.uint8) * 255)
            entry["mask"] = mask_rel
        regions.append(entry)
    return {
        "path": image.path,
        "file": file_rel,
        "width": image.width,
        "height": image.height,
        "split": image.split,
        "label": image.label,
        "labeled": image.labeled,
        "metadata": dict(image.metadata),
        "regions": regions,
    }


def _load_manifest(root: Path, log: ProblemLog) -> dict[str, Any]:
    try:
        document = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        log.error(MANIFEST, f"manifest could not be read ({error}); nothing imported")
        return {}
    if not isinstance(document, dict) or document.get("format") != "defectlab":
        log.error(MANIFEST, "file is not a defectlab manifest ('format' is not 'defectlab'); nothing imported")
        return {}
    if document.get("version") != VERSION:
        log.error(
            MANIFEST,
            f"manifest version {document.get('version')!r} is not supported (this defectlab reads version {VERSION}); "
            "update defectlab or export again",
        )
        return {}
    return document


def _read_image(entry: object, root: Path, reporter: Reporter, log: ProblemLog) -> ImportedImage | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        reporter.error("entry has no 'path'; image skipped")
        return None
    path = entry["path"]
    source = root / str(entry.get("file") or f"images/{path}")
    if not source.is_file():
        reporter.error(f"image file {source.relative_to(root).as_posix()!r} for {path!r} is missing; image skipped")
        return None

    size = (entry.get("width"), entry.get("height"))
    declared = (int(size[0]), int(size[1])) if all(isinstance(value, int) for value in size) else None
    split = entry.get("split") if entry.get("split") in SPLITS else None
    image = ImportedImage(
        path=path,
        source=source,
        split=split,
        label=entry.get("label") if isinstance(entry.get("label"), str) else None,
        labeled=bool(entry.get("labeled")),
        metadata={str(key): str(value) for key, value in (entry.get("metadata") or {}).items()},
        declared_size=declared,
    )
    for number, region_entry in enumerate(entry.get("regions") or []):
        region = _read_region(region_entry, root, reporter.about(f"{path}, region {number}"), declared)
        if region is not None:
            image.regions.append(region)
    return image


def _read_region(entry: object, root: Path, reporter: Reporter, size: tuple[int, int] | None) -> Region | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("class"), str):
        reporter.error("region has no 'class'; region skipped")
        return None
    kind, class_name = entry.get("kind"), entry["class"]
    if kind == "box" and _is_numbers(entry.get("box"), 4):
        box = check_pixel_box(tuple(entry["box"]), reporter, size=size)
        return None if box is None else Region(kind="box", class_name=class_name, box=box)
    if kind == "polygon" and _is_numbers(entry.get("polygon"), None):
        polygon = check_pixel_polygon([float(value) for value in entry["polygon"]], reporter, size=size)
        return None if polygon is None else Region(kind="polygon", class_name=class_name, polygon=polygon)
    if kind == "mask" and isinstance(entry.get("mask"), str):
        reading = read_mask_file(root / entry["mask"], reporter)
        layers = [] if reading is None else list(reading.layers.values())
        mask = check_mask(np.logical_or.reduce(layers), reporter) if layers else None
        if reading is not None and not layers:
            reporter.error(f"mask file {entry['mask']!r} is empty; region skipped")
        return None if mask is None else Region(kind="mask", class_name=class_name, mask=mask)
    reporter.error(f"region of kind {kind!r} lacks its 'box', 'polygon' or 'mask' value; region skipped")
    return None


def _is_numbers(values: object, count: int | None) -> bool:
    if not isinstance(values, list) or (count is not None and len(values) != count):
        return False
    return all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values)
