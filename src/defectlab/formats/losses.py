"""Say, before writing, what a target format cannot hold and will drop or change."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from defectlab.errors import InvalidInputError
from defectlab.formats._writing import defect_classes, label_kind
from defectlab.formats._yolo_writer import class_ids, yolo_task
from defectlab.formats.export import ExportSet

__all__ = ["describe_losses"]


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


def describe_losses(export_set: ExportSet, format: str) -> list[str]:
    """List, in plain sentences, what writing ``export_set`` as ``format`` loses or changes.

    Returns:
        One sentence per loss; an empty list when nothing is lost (always for ``native``).

    Raises:
        InvalidInputError: ``format`` is not a known format name.
    """
    describe = _DESCRIBERS.get(format)
    if describe is None:
        raise InvalidInputError(f"unknown export format {format!r}; choose one of {sorted(_DESCRIBERS)}")
    contents = _count(export_set)
    return [sentence for sentence in describe(export_set, contents) if sentence]


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
    )


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


def _splits(contents: _Contents, format_label: str) -> str:
    if not contents.with_split:
        return ""
    return f"splits of {contents.with_split} image(s) are not written ({format_label} has no place for them)"


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
    return [
        f"{contents.boxes} box(es), {contents.polygons} polygon(s) and {contents.masks} mask(s) are not written; "
        "folder-per-class keeps only each image's class" if regions else "",
        f"{contents.mixed_classes} image(s) with regions of several classes are filed under the most frequent one"
        if contents.mixed_classes else "",
        _metadata(contents, "folder-per-class"),
        _external_ids(export_set, "folder-per-class"),
        "image paths gain the split and class folders in front ([split/]class/path)" if export_set.images else "",
    ]


def _describe_masks(export_set: ExportSet, contents: _Contents) -> list[str]:
    return [
        f"{contents.boxes} box(es) and {contents.polygons} polygon(s) become mask pixels"
        if contents.boxes + contents.polygons else "",
        "regions of one class on one image merge into one mask area, and where regions overlap the later one wins"
        if contents.boxes + contents.polygons + contents.masks else "",
        _class_only(contents, "an image-plus-mask layout"),
        _splits(contents, "the image-plus-mask layout"),
        _metadata(contents, "the image-plus-mask layout"),
        _external_ids(export_set, "the image-plus-mask layout (classes.txt numbers classes from 1)"),
    ]


def _describe_mvtec(export_set: ExportSet, contents: _Contents) -> list[str]:
    return [
        f"{contents.unlabeled} unlabeled image(s) are not written (MVTec has no place for them)" if contents.unlabeled else "",
        f"{contents.class_only} image(s) with a defect class but no mask are not written" if contents.class_only else "",
        "all regions of an image become one mask under its most frequent class; boxes and polygons become mask pixels"
        if contents.boxes + contents.polygons + contents.masks else "",
        f"{contents.defect_train} defective training image(s) move to test, because MVTec trains on good images only"
        if contents.defect_train else "",
        "ok images of the dev or test split go to test/good, all other ok images to train/good"
        if contents.with_split else "",
        _metadata(contents, "MVTec"),
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
    return [
        _class_only(contents, "COCO annotations"),
        "splits and metadata are written as extra image keys that only defectlab reads back"
        if contents.with_split or contents.with_metadata else "",
    ]


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
