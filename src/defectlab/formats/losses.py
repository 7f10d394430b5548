"""Say, before writing, what a target format cannot hold and will drop or change."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from defectlab.errors import InvalidInputError
from defectlab.formats._layout import split_for_folder
from defectlab.formats._raster import region_mask
from defectlab.formats._writing import defect_classes, label_kind, ok_folder_name
from defectlab.formats._yolo_writer import class_ids, yolo_task
from defectlab.formats.export import ExportSet
from defectlab.formats.folders import folder_target_path
from defectlab.formats.mvtec import OBJECT_KEY
from defectlab.formats.records import ExportImage

__all__ = ["describe_losses", "describe_notes"]


@dataclass(frozen=True)
class _Contents:
    """Counts of what an export set holds, for the loss sentences."""

    boxes: int
    polygons: int
    masks: int
    class_only: int
    unlabeled: int
    with_metadata: int
    with_split: int
    mixed_classes: int
    defect_train: int
    several_regions: int
    merged_regions: int
    split_outside_path: int
    ok_outside_train_test: int


def describe_losses(export_set: ExportSet, format: str) -> list[str]:
    """List, in plain sentences, what writing ``export_set`` as ``format`` loses or changes.

    Only what does not read back the same is listed: a label, region, split,
    metadata value or path that the format drops or turns into something
    else. What the format keeps in its own way (COCO's extra image keys for
    splits and metadata) is not a loss, and ``describe_notes`` lists it.

    Returns:
        One sentence per loss; an empty list when nothing is lost (always for ``native``).

    Raises:
        InvalidInputError: ``format`` is not a known format name.
    """
    describe = _DESCRIBERS.get(format)
    if describe is None:
        raise InvalidInputError(f"unknown export format {format!r}; choose one of: {', '.join(_DESCRIBERS)}")
    contents = _count(export_set)
    return [sentence for sentence in describe(export_set, contents) if sentence]


def describe_notes(export_set: ExportSet, format: str) -> list[str]:
    """List what a format keeps in a form that other tools may not read, without it being a loss."""
    with_extras = sum(bool(image.split or image.metadata) for image in export_set.images)
    if format == "coco" and with_extras:
        return [
            f"splits and metadata of {with_extras} image(s) are written as the extra image keys 'split' and "
            "'metadata', which defectlab reads back and other COCO tools ignore"
        ]
    return []


def _count(export_set: ExportSet) -> _Contents:
    kinds: Counter[str] = Counter(region.kind for image in export_set.images for region in image.regions)
    labels = Counter(label_kind(image) for image in export_set.images)
    return _Contents(
        boxes=kinds["box"],
        polygons=kinds["polygon"],
        masks=kinds["mask"],
        class_only=labels["class"],
        unlabeled=labels["unlabeled"],
        with_metadata=sum(bool(image.metadata) for image in export_set.images),
        with_split=sum(image.split is not None for image in export_set.images),
        mixed_classes=sum(len({region.class_name for region in image.regions}) > 1 for image in export_set.images),
        defect_train=sum(
            image.split == "train" and label_kind(image) in ("class", "regions") for image in export_set.images
        ),
        several_regions=sum(len(image.regions) > 1 for image in export_set.images),
        merged_regions=sum(_regions_merge(image) for image in export_set.images),
        split_outside_path=sum(
            image.split is not None and _split_in_path(image.path) != image.split for image in export_set.images
        ),
        ok_outside_train_test=sum(
            label_kind(image) == "ok" and image.split not in ("train", "test") for image in export_set.images
        ),
    )


def _split_in_path(path: str) -> str | None:
    """Return the split that a folder of ``path`` names, as readers of folder layouts take it."""
    return next((split_for_folder(part) for part in path.split("/")[:-1] if split_for_folder(part)), None)


def _regions_merge(image: ExportImage) -> bool:
    """Tell whether an index mask cannot keep the image's regions apart.

    That is the case when two regions have the same class, or when regions
    of different classes share pixels.
    """
    names = [region.class_name for region in image.regions]
    if len(names) != len(set(names)):
        return True
    if len(names) < 2:
        return False
    covered = np.zeros((image.height, image.width), dtype=bool)
    for region in image.regions:
        pixels = region_mask(region, image.width, image.height)
        if (covered & pixels).any():
            return True
        covered |= pixels
    return False


def _class_only(contents: _Contents, holds: str) -> str:
    if not contents.class_only:
        return ""
    return (
        f"{contents.class_only} image(s) with an image-level defect class and no regions have no place in {holds}; "
        "they are written without a label and read back unlabeled"
    )


def _metadata(contents: _Contents, format_label: str) -> str:
    if not contents.with_metadata:
        return ""
    return f"metadata of {contents.with_metadata} image(s) is not written ({format_label} has no place for it)"


def _metadata_except_object(export_set: ExportSet) -> str:
    """Describe the metadata MVTec loses: all of it, except ``object`` when every image has one."""
    keep = OBJECT_KEY if all(image.metadata.get(OBJECT_KEY) for image in export_set.images) else None
    count = sum(any(key != keep for key in image.metadata) for image in export_set.images)
    if not count:
        return ""
    kept = f" (only the '{OBJECT_KEY}' key is kept, as the object folder)" if keep else ""
    return f"metadata of {count} image(s) is not written{kept}, because MVTec has no place for it"


def _splits(contents: _Contents, format_label: str) -> str:
    if not contents.split_outside_path:
        return ""
    return (
        f"splits of {contents.split_outside_path} image(s) are not written ({format_label} has no place for them, "
        "and no split folder in their paths names them)"
    )


def _external_ids(export_set: ExportSet, format_label: str) -> str:
    ids = [spec.external_id for spec in defect_classes(export_set) if spec.external_id is not None]
    if not ids:
        return ""
    return f"the source's class ids ({', '.join(ids[:6])}{', ...' if len(ids) > 6 else ''}) are not written by {format_label}"


def _unused_classes(export_set: ExportSet, format_label: str) -> str:
    used = {region.class_name for image in export_set.images for region in image.regions}
    unused = [spec.name for spec in defect_classes(export_set) if spec.name not in used]
    if not unused:
        return ""
    return f"classes without any region ({', '.join(unused)}) are not written, because {format_label} has no class list"


def _describe_folders(export_set: ExportSet, contents: _Contents) -> list[str]:
    regions = contents.boxes + contents.polygons + contents.masks
    moved = sum(folder_target_path(image, ok_folder_name(export_set)) != image.path for image in export_set.images)
    return [
        f"{contents.boxes} box(es), {contents.polygons} polygon(s) and {contents.masks} mask(s) are not written; "
        "folder-per-class keeps only each image's class" if regions else "",
        f"{contents.mixed_classes} image(s) with regions of several classes are filed under the most frequent one"
        if contents.mixed_classes else "",
        _metadata(contents, "folder-per-class"),
        _external_ids(export_set, "folder-per-class"),
        f"paths of {moved} image(s) gain the split and class folders in front ([split/]class/path), so they read "
        "back as new images" if moved else "",
    ]


def _describe_masks(export_set: ExportSet, contents: _Contents) -> list[str]:
    return [
        f"{contents.boxes} box(es) and {contents.polygons} polygon(s) become mask pixels"
        if contents.boxes + contents.polygons else "",
        f"{contents.merged_regions} image(s) have regions of one class, or overlapping regions, that merge into one "
        "mask area each (where regions overlap, the later one wins)" if contents.merged_regions else "",
        _class_only(contents, "an image-plus-mask layout"),
        _splits(contents, "the image-plus-mask layout"),
        _metadata(contents, "the image-plus-mask layout"),
        _external_ids(export_set, "the image-plus-mask layout (classes.txt numbers classes from 1)"),
    ]


def _describe_mvtec(export_set: ExportSet, contents: _Contents) -> list[str]:
    return [
        f"{contents.unlabeled} unlabeled image(s) are not written (MVTec has no place for them)" if contents.unlabeled else "",
        f"{contents.class_only} image(s) with a defect class but no mask are not written" if contents.class_only else "",
        f"{contents.several_regions} image(s) with several regions get one mask each, under their most frequent class"
        if contents.several_regions else "",
        f"{contents.boxes} box(es) and {contents.polygons} polygon(s) become mask pixels"
        if contents.boxes + contents.polygons else "",
        f"{contents.defect_train} defective training image(s) move to test, because MVTec trains on good images only"
        if contents.defect_train else "",
        f"{contents.ok_outside_train_test} ok image(s) of the dev split or of no split are written to test/good "
        "(dev) or train/good (no split) and read back with that split" if contents.ok_outside_train_test else "",
        _metadata_except_object(export_set),
    ]


def _describe_yolo(export_set: ExportSet, contents: _Contents) -> list[str]:
    segment = yolo_task(export_set) == "segment"
    classes = defect_classes(export_set)
    ids = class_ids(classes)
    renumbered = any(spec.external_id is not None and spec.external_id != str(ids[spec.name]) for spec in classes)
    return [
        f"{contents.masks} mask(s) become polygons of their outer contours (holes are filled)"
        if segment and contents.masks else "",
        f"{contents.boxes} box(es) become four-corner polygons, because the dataset is written for segmentation"
        if segment and contents.boxes else "",
        f"{contents.polygons} polygon(s) and {contents.masks} mask(s) become boxes"
        if not segment and contents.polygons + contents.masks else "",
        _class_only(contents, "YOLO label files"),
        _metadata(contents, "YOLO"),
        "class ids are renumbered 0, 1, 2... because YOLO ids must run from 0 without gaps" if renumbered else "",
    ]


def _describe_coco(export_set: ExportSet, contents: _Contents) -> list[str]:
    return [_class_only(contents, "COCO annotations")]


def _describe_voc(export_set: ExportSet, contents: _Contents) -> list[str]:
    return [
        f"{contents.polygons} polygon(s) and {contents.masks} mask(s) become their enclosing boxes"
        if contents.polygons + contents.masks else "",
        _class_only(contents, "VOC annotation files"),
        _metadata(contents, "VOC"),
        _external_ids(export_set, "VOC"),
        _unused_classes(export_set, "VOC"),
    ]


def _describe_native(export_set: ExportSet, contents: _Contents) -> list[str]:
    return []


_DESCRIBERS = {
    "native": _describe_native,
    "folders": _describe_folders,
    "masks": _describe_masks,
    "mvtec": _describe_mvtec,
    "yolo": _describe_yolo,
    "coco": _describe_coco,
    "voc": _describe_voc,
}
