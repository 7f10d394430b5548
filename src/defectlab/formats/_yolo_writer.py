"""Write a YOLO (Ultralytics) dataset: ``data.yaml``, ``images/<split>/`` and ``labels/<split>/``.

The task is ``segment`` when any image has a polygon or mask, else
``detect``. In a segmentation dataset a box becomes a four-corner polygon
and a mask becomes the polygons of its outer contours. Coordinates are
fractions of the displayed image size, which is the size ``ExportImage``
carries.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import yaml

from defectlab.formats._layout import folder_for_split
from defectlab.formats._problems import ProblemLog
from defectlab.formats._raster import mask_polygons
from defectlab.formats._writing import (
    copy_image,
    defect_classes,
    label_kind,
    prepare_output_dir,
    region_box,
    strip_layout_prefix,
    target_path,
    write_text,
)
from defectlab.formats.export import ExportSet
from defectlab.formats.records import ClassSpec, ExportImage, Problem, Region

__all__ = ["UNASSIGNED_FOLDER", "class_ids", "write_yolo", "yolo_task"]

UNASSIGNED_FOLDER = "unassigned"
"""Split folder for images without a split.

``data.yaml`` lists it under ``train`` so that training tools use these
images, and the YOLO reader gives its images no split.
"""


def yolo_task(export_set: ExportSet) -> str:
    """Return ``segment`` when any region is a polygon or mask, else ``detect``."""
    kinds = {region.kind for image in export_set.images for region in image.regions}
    return "segment" if kinds & {"polygon", "mask"} else "detect"


def class_ids(classes: list[ClassSpec]) -> dict[str, int]:
    """Number the defect classes 0, 1, 2...; keep the source's ids when they are exactly those numbers.

    YOLO ids must run from 0 without gaps, so ids such as COCO's 1, 3, 7 are
    renumbered in class order.
    """
    ids = [spec.external_id for spec in classes]
    if all(value is not None and value.isdigit() for value in ids):
        numbers = [int(str(value)) for value in ids]
        if sorted(numbers) == list(range(len(numbers))):
            return {spec.name: number for spec, number in zip(classes, numbers, strict=True)}
    return {spec.name: index for index, spec in enumerate(classes)}


def write_yolo(export_set: ExportSet, out_dir: Path) -> list[Problem]:
    """Write the images, one label file per labeled image, and ``data.yaml``.

    An ok image gets an empty label file, an unlabeled image none. An image
    with only an image-level defect class has no YOLO form. It is written
    without a label file, so it reads back unlabeled, and reported.
    """
    prepare_output_dir(out_dir)
    log = ProblemLog()
    ids = class_ids(defect_classes(export_set))
    task = yolo_task(export_set)

    folders: set[str] = set()
    for image in export_set.images:
        folder = folder_for_split(image.split) or UNASSIGNED_FOLDER
        if _write_image(image, out_dir, folder, ids, task, log):
            folders.add(folder)
    _write_config(out_dir, ids, task, folders)
    return log.problems


def _write_image(
    image: ExportImage, out_dir: Path, folder: str, ids: dict[str, int], task: str, log: ProblemLog
) -> bool:
    prefix = f"{folder}/"
    inner = strip_layout_prefix(image.path, "", leading="images")
    target = target_path(out_dir, f"images/{prefix}{inner}", log, image_path=image.path)
    if target is None or not copy_image(image, target, log):
        return False

    kind = label_kind(image)
    if kind == "class":
        log.warning(
            image.path,
            f"image-level class {image.label!r} has no YOLO form (YOLO holds boxes and polygons); "
            "written without a label file, so it reads back unlabeled",
        )
    if kind in ("class", "unlabeled"):
        return True
    lines = [line for region in image.regions for line in _region_lines(region, image, ids, task)]
    label_rel = PurePosixPath(f"labels/{prefix}{inner}").with_suffix(".txt")
    write_text(out_dir / label_rel, "".join(line + "\n" for line in lines))
    return True


def _region_lines(region: Region, image: ExportImage, ids: dict[str, int], task: str) -> list[str]:
    class_id = ids[region.class_name]
    if task == "detect":
        box = region_box(region)
        return [] if box is None else [f"{class_id} {_box_values(box, image)}"]

    if region.kind == "mask" and region.mask is not None:
        polygons = mask_polygons(region.mask)
    elif region.kind == "polygon" and region.polygon:
        polygons = [region.polygon]
    else:
        box = region_box(region)
        polygons = [] if box is None else [[box[0], box[1], box[2], box[1], box[2], box[3], box[0], box[3]]]
    return [f"{class_id} {_polygon_values(polygon, image)}" for polygon in polygons]


def _box_values(box: tuple[float, float, float, float], image: ExportImage) -> str:
    x_min, y_min, x_max, y_max = box
    values = (
        (x_min + x_max) / 2 / image.width,
        (y_min + y_max) / 2 / image.height,
        (x_max - x_min) / image.width,
        (y_max - y_min) / image.height,
    )
    return " ".join(_fraction(value) for value in values)


def _polygon_values(polygon: list[float], image: ExportImage) -> str:
    scales = (image.width, image.height)
    return " ".join(_fraction(value / scales[index % 2]) for index, value in enumerate(polygon))


def _fraction(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") if value else "0"


def _write_config(out_dir: Path, ids: dict[str, int], task: str, folders: set[str]) -> None:
    """Write ``data.yaml`` with the split folders that hold images.

    Ultralytics rejects a ``data.yaml`` without ``val``, so without dev
    images ``val`` repeats the ``train`` entry, and a YAML comment states
    this. The YOLO reader keeps the first split named for a folder, so those
    images read back as train.
    """
    document: dict[str, object] = {"path": "."}
    train = [f"images/{name}" for name in ("train", UNASSIGNED_FOLDER) if name in folders]
    document["train"] = train[0] if len(train) == 1 else train
    document["val"] = "images/val" if "val" in folders else document["train"]
    if "test" in folders:
        document["test"] = "images/test"
    document["task"] = task
    document["nc"] = len(ids)
    document["names"] = {class_id: name for name, class_id in sorted(ids.items(), key=lambda item: item[1])}

    header = ""
    if "val" not in folders:
        header = "# No dev split: val repeats train because Ultralytics requires a val entry.\n"
    if UNASSIGNED_FOLDER in folders:
        header += f"# images/{UNASSIGNED_FOLDER} holds the images that have no split yet.\n"
    write_text(out_dir / "data.yaml", header + yaml.safe_dump(document, allow_unicode=True, sort_keys=False))
