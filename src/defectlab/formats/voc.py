"""Pascal VOC XML: one annotation file of boxes per image.

Layout: ``Annotations/<name>.xml`` for ``JPEGImages/<name>.<ext>``, with
optional ``ImageSets/Main/{train,val,test}.txt`` listing the names of each
split; subfolders are mirrored in both trees. The labelImg layout, with
each XML file beside its image, is read too. An XML file without
``<object>`` means no defect; an image without an XML file is unlabeled.

Box coordinates are read and written as pixel positions without the
one-pixel shift of the original VOC devkit, as labelImg, torchvision and
most converters do.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ElementTree
from pathlib import Path, PurePosixPath

from defectlab.formats._layout import is_image_file, iter_files, relative_path, split_for_folder
from defectlab.formats._problems import ProblemLog, Reporter
from defectlab.formats._shapes import check_pixel_box
from defectlab.formats._writing import (
    copy_image,
    label_kind,
    prepare_output_dir,
    region_box,
    target_path,
    write_text,
)
from defectlab.formats.export import ExportSet
from defectlab.formats.records import OK_CLASS, ClassSpec, ExportImage, ImportBatch, ImportedImage, Problem, Region

__all__ = ["find_annotation_folder", "read_voc", "write_voc"]

logger = logging.getLogger(__name__)

FORMAT = "voc"

ANNOTATIONS = "Annotations"
IMAGES = "JPEGImages"
SPLIT_LISTS = "ImageSets/Main"


def find_annotation_folder(root: Path) -> Path | None:
    """Return the ``Annotations`` folder (any case) under ``root``, if there is one."""
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        if child.is_dir() and child.name.lower() == ANNOTATIONS.lower():
            return child
    return None


def read_voc(root: Path) -> ImportBatch:
    """Read a Pascal VOC dataset.

    Problems:
        * error: an XML file that cannot be parsed, or whose image is missing.
        * error: an object without a name, or with a missing, non-numeric,
          inverted or zero-size ``bndbox``.
        * warning: a box clipped to the declared size.
        * warning: an image whose every object was rejected (imported unlabeled).
        * warning: one for the whole dataset when objects are marked
          ``<difficult>1</difficult>``; they are imported as ordinary boxes,
          because a region has no difficult flag.
    """
    log = ProblemLog()
    annotations = find_annotation_folder(root)
    image_root = _image_root(root) if annotations is not None else root
    images = {
        relative_path(path, image_root): ImportedImage(relative_path(path, image_root), path)
        for path in iter_files(image_root)
        if is_image_file(path)
    }

    xml_root = annotations if annotations is not None else root
    difficult: dict[str, int] = {}
    for xml_path in iter_files(xml_root):
        if xml_path.suffix.lower() == ".xml":
            xml_rel = relative_path(xml_path, root)
            difficult[xml_rel] = _read_xml(xml_path, xml_rel, xml_root, images, log)
    _report_difficult(difficult, log)

    _apply_split_lists(root, images)
    classes = sorted({region.class_name for image in images.values() for region in image.regions})
    logger.info("read %d images from %s", len(images), root)
    return ImportBatch(FORMAT, [ClassSpec(name) for name in classes], list(images.values()), log.problems)


def write_voc(export_set: ExportSet, out_dir: Path) -> list[Problem]:
    """Write ``JPEGImages/``, ``Annotations/`` and ``ImageSets/Main/`` split lists.

    Polygons and masks are written as their enclosing boxes. An image with
    only an image-level defect class gets no XML file (it reads back
    unlabeled) and a warning.
    """
    prepare_output_dir(out_dir)
    log = ProblemLog()
    split_names: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    written: set[str] = set()

    for image in export_set.images:
        name = str(PurePosixPath(image.path).with_suffix(""))
        if name in written:
            log.error(image.path, f"another image already uses the annotation name {name!r}; image skipped")
            continue
        target = target_path(out_dir, f"{IMAGES}/{image.path}", log, image_path=image.path)
        if target is None or not copy_image(image, target, log):
            continue
        written.add(name)
        _write_annotation(image, out_dir / ANNOTATIONS / f"{name}.xml", log)
        folder = {"train": "train", "dev": "val", "test": "test"}.get(image.split or "")
        if folder is not None:
            split_names[folder].append(name)

    for folder, names in split_names.items():
        if names:
            write_text(out_dir / SPLIT_LISTS / f"{folder}.txt", "".join(f"{name}\n" for name in names))
    return log.problems


def _image_root(root: Path) -> Path:
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name.lower() in ("jpegimages", "images"):
            return child
    return root


def _read_xml(xml_path: Path, xml_rel: str, xml_root: Path, images: dict[str, ImportedImage], log: ProblemLog) -> int:
    """Add one XML file's boxes to its image; return how many of its imported objects are marked difficult."""
    reporter = log.at(xml_rel)
    try:
        tree = ElementTree.parse(xml_path)
    except (OSError, ElementTree.ParseError) as error:
        reporter.error(f"XML could not be parsed ({error}); fix the file")
        return 0

    document = tree.getroot()
    image = _find_image(document, relative_path(xml_path, xml_root), images)
    if image is None:
        reporter.error(f"no image found for this annotation (filename {document.findtext('filename')!r}); skipped")
        return 0
    image.declared_size = _declared_size(document)
    objects = document.findall("object")
    difficult = 0
    for index, element in enumerate(objects, 1):
        region = _read_object(element, reporter.about(f"object {index}"), image.declared_size)
        if region is not None:
            image.regions.append(region)
            difficult += (element.findtext("difficult") or "").strip() == "1"

    if image.regions:
        image.labeled = True
    elif objects:
        reporter.warning(f"every object was rejected; {image.path} imported unlabeled")
    else:
        image.label, image.labeled = OK_CLASS, True
    return difficult


def _report_difficult(difficult: dict[str, int], log: ProblemLog) -> None:
    files = [rel for rel, count in difficult.items() if count]
    if not files:
        return
    total = sum(difficult.values())
    log.warning(
        files[0],
        f"{total} object(s) in {len(files)} file(s), starting with this one, are marked <difficult>1</difficult>; "
        "they were imported as ordinary boxes, because defectlab keeps no difficult flag. "
        "Delete or relabel them if they should not count as defects",
    )


def _find_image(document: ElementTree.Element, xml_rel: str, images: dict[str, ImportedImage]) -> ImportedImage | None:
    folder = PurePosixPath(xml_rel).parent
    filename = (document.findtext("filename") or "").strip()
    if filename:
        candidate = str(folder / PurePosixPath(filename.replace("\\", "/")).name)
        if candidate in images:
            return images[candidate]
    stem = str(folder / PurePosixPath(xml_rel).stem)
    return next((image for rel, image in images.items() if str(PurePosixPath(rel).with_suffix("")) == stem), None)


def _declared_size(document: ElementTree.Element) -> tuple[int, int] | None:
    try:
        width = int(float(document.findtext("size/width") or 0))
        height = int(float(document.findtext("size/height") or 0))
    except ValueError:
        return None
    return (width, height) if width > 0 and height > 0 else None


def _read_object(element: ElementTree.Element, reporter: Reporter, size: tuple[int, int] | None) -> Region | None:
    name = (element.findtext("name") or "").strip()
    if not name:
        reporter.error("object has no <name>; object skipped")
        return None
    texts = [element.findtext(f"bndbox/{key}") for key in ("xmin", "ymin", "xmax", "ymax")]
    try:
        values = [float(text) for text in texts if text is not None]
    except ValueError:
        reporter.error(f"bndbox values {texts} are not all numbers; object skipped")
        return None
    if len(values) != 4:
        reporter.error("object has no complete <bndbox> (xmin, ymin, xmax, ymax); object skipped")
        return None
    box = check_pixel_box((values[0], values[1], values[2], values[3]), reporter, size=size)
    return None if box is None else Region(kind="box", class_name=name, box=box)


def _apply_split_lists(root: Path, images: dict[str, ImportedImage]) -> None:
    lists = root / SPLIT_LISTS
    if not lists.is_dir():
        return
    by_name = {str(PurePosixPath(rel).with_suffix("")): image for rel, image in images.items()}
    for list_path in sorted(lists.glob("*.txt")):
        split = split_for_folder(list_path.stem)
        if split is None:
            continue
        for line in list_path.read_text(encoding="utf-8-sig").splitlines():
            words = line.split()
            image = by_name.get(words[0]) if words else None
            if image is not None:
                image.split = split


def _write_annotation(image: ExportImage, path: Path, log: ProblemLog) -> None:
    kind = label_kind(image)
    if kind == "class":
        log.warning(
            image.path,
            f"image-level class {image.label!r} has no VOC form (VOC holds boxes); no XML written, "
            "so the image reads back unlabeled",
        )
    if kind in ("class", "unlabeled"):
        return

    document = ElementTree.Element("annotation")
    ElementTree.SubElement(document, "folder").text = str(PurePosixPath(image.path).parent)
    ElementTree.SubElement(document, "filename").text = PurePosixPath(image.path).name
    size = ElementTree.SubElement(document, "size")
    ElementTree.SubElement(size, "width").text = str(image.width)
    ElementTree.SubElement(size, "height").text = str(image.height)
    ElementTree.SubElement(document, "segmented").text = "0"
    for region in image.regions:
        if not _add_object(document, region):
            log.warning(image.path, f"{region.kind} of class {region.class_name!r} is empty; not written")
    ElementTree.indent(document)
    write_text(path, ElementTree.tostring(document, encoding="unicode") + "\n")


def _add_object(document: ElementTree.Element, region: Region) -> bool:
    box = region_box(region)
    if box is None:
        return False
    element = ElementTree.SubElement(document, "object")
    ElementTree.SubElement(element, "name").text = region.class_name
    ElementTree.SubElement(element, "truncated").text = "0"
    ElementTree.SubElement(element, "difficult").text = "0"
    bndbox = ElementTree.SubElement(element, "bndbox")
    for key, value in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
        ElementTree.SubElement(bndbox, key).text = _coordinate(value)
    return True


def _coordinate(value: float) -> str:
    """Write whole pixels as integers, as VOC tools expect, and keep fractions to 1/1000 pixel."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0")
