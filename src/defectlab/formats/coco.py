"""COCO object-detection JSON: boxes, polygons and RLE masks.

A COCO file lists ``images`` (``id``, ``file_name``, ``width``, ``height``),
``categories`` (``id``, ``name``) and ``annotations`` (``image_id``,
``category_id``, ``bbox`` as ``[x, y, width, height]`` and an optional
``segmentation``: a list of flat polygons, or an RLE in the compressed or
uncompressed form). All coordinates are pixels.

Category ids are opaque keys: 0 is a valid id, and gaps are fine. Each
class keeps its id as ``ClassSpec.external_id``. An image listed without
annotations is explicitly ok; an image file on disk that no COCO file lists
is imported unlabeled. The extra image keys ``split`` and ``metadata``
written by defectlab's COCO writer are read back when present, and so is
its extra top-level list ``unlabeled_images`` of images without labels.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from defectlab.errors import InvalidInputError
from defectlab.formats._coco_writer import UNLABELED_KEY, write_coco
from defectlab.formats._layout import is_image_file, iter_files, relative_path, split_for_file_stem, split_for_folder
from defectlab.formats._problems import ProblemLog, Reporter
from defectlab.formats._shapes import check_mask, check_pixel_box, check_pixel_polygon
from defectlab.formats.records import OK_CLASS, ClassSpec, ImportBatch, ImportedImage, Region
from defectlab.formats.rle import decode_rle

__all__ = ["find_coco_files", "is_coco_document", "load_json", "read_coco", "write_coco"]

logger = logging.getLogger(__name__)

FORMAT = "coco"


@dataclass
class _CocoState:
    """Classes and images gathered across the COCO files of one dataset."""

    root: Path
    log: ProblemLog
    classes: dict[str, ClassSpec] = field(default_factory=dict)
    images: dict[str, ImportedImage] = field(default_factory=dict)
    image_folders: set[Path] = field(default_factory=set)


def is_coco_document(document: object) -> bool:
    """Tell whether a parsed JSON document has the COCO top-level lists."""
    return isinstance(document, dict) and isinstance(document.get("images"), list) and (
        isinstance(document.get("annotations"), list) or isinstance(document.get("categories"), list)
    )


def find_coco_files(root: Path) -> list[Path]:
    """Return the COCO JSON files at the root or in its ``annotations`` folder."""
    candidates = sorted(root.glob("*.json")) + sorted((root / "annotations").glob("*.json"))
    return [path for path in candidates if path.name != "defectlab.json" and is_coco_document(load_json(path))]


def read_coco(path: Path) -> ImportBatch:
    """Read one COCO JSON file, or every COCO file in a folder.

    Problems, each naming the JSON file and the annotation or image id:
        * error: a JSON file that cannot be parsed; a category without id or
          name, or with a repeated id; an image whose file is missing.
        * error: an annotation with an unknown image or category id.
        * error: an invalid box, an odd-length or degenerate polygon, or an
          RLE whose runs do not add up to height x width or whose size
          differs from the image's.
        * warning: clipped shapes and one-pixel mask islands.
        * warning: an image whose every annotation was rejected, and an
          image on disk that no COCO file lists (both imported unlabeled).
    """
    root = path.parent if path.is_file() else path
    files = [path] if path.is_file() else find_coco_files(path)
    state = _CocoState(root, ProblemLog())
    for json_path in files:
        _read_file(json_path, state)
    _add_unlisted_images(state)

    images = list(state.images.values())
    logger.info("read %d images from %d COCO file(s) under %s", len(images), len(files), root)
    return ImportBatch(FORMAT, list(state.classes.values()), images, state.log.problems)


def load_json(path: Path) -> object:
    """Parse a JSON file; return None when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _read_file(json_path: Path, state: _CocoState) -> None:
    rel = relative_path(json_path, state.root)
    try:
        document = json.loads(json_path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        state.log.error(rel, f"COCO file could not be parsed ({error}); fix the JSON")
        return
    if not is_coco_document(document):
        state.log.error(rel, "file has no 'images' and 'annotations' lists, so it is not a COCO file; skipped")
        return

    reporter = state.log.at(rel)
    categories = _read_categories(document.get("categories") or [], reporter, state)
    by_id = _read_images(document["images"], json_path, reporter, state)
    failed: set[object] = set()
    for annotation in document.get("annotations") or []:
        if not _read_annotation(annotation, by_id, categories, reporter):
            failed.add(annotation.get("image_id") if isinstance(annotation, dict) else None)
    _finish_labels(by_id, failed, reporter)
    _read_unlabeled(document.get(UNLABELED_KEY), json_path, reporter, state)


def _read_categories(entries: list[Any], reporter: Reporter, state: _CocoState) -> dict[object, str]:
    categories: dict[object, str] = {}
    for entry in entries:
        key = entry.get("id") if isinstance(entry, dict) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        if key is None or not isinstance(key, (int, str)) or isinstance(key, bool) or not name:
            reporter.error(f"category {entry!r} needs an 'id' and a 'name'; category skipped")
            continue
        if key in categories:
            reporter.error(f"category id {key!r} appears twice ({categories[key]!r}, {name!r}); the second is skipped")
            continue
        categories[key] = str(name)
        known = state.classes.setdefault(str(name), ClassSpec(str(name), external_id=str(key)))
        if known.external_id != str(key):
            reporter.warning(
                f"class {name!r} has id {key!r} here but id {known.external_id!r} in an earlier file; "
                f"the first id is kept for export"
            )
    return categories


def _read_images(entries: list[Any], json_path: Path, reporter: Reporter, state: _CocoState) -> dict[object, ImportedImage]:
    by_id: dict[object, ImportedImage] = {}
    split = split_for_file_stem(json_path.stem)
    for entry in entries:
        image_id = entry.get("id") if isinstance(entry, dict) else None
        file_name = entry.get("file_name") if isinstance(entry, dict) else None
        if image_id is None or not isinstance(file_name, str) or not file_name:
            reporter.error(f"image entry {entry!r} needs an 'id' and a 'file_name'; image skipped")
            continue
        if image_id in by_id:
            reporter.error(f"image id {image_id!r} appears twice; the second entry ({file_name!r}) is skipped")
            continue
        image = _make_image(entry, file_name, json_path, split, reporter, state)
        if image is not None:
            by_id[image_id] = image
    return by_id


def _make_image(
    entry: dict[str, Any], file_name: str, json_path: Path, split: str | None, reporter: Reporter, state: _CocoState,
    *, labeled: bool = True,
) -> ImportedImage | None:
    name = PurePosixPath(file_name.replace("\\", "/").removeprefix("./")).as_posix()
    source, base = _resolve(name, json_path, state.root)
    if source is None:
        reporter.error(f"image file {file_name!r} was not found next to the COCO file or in an 'images' folder; image skipped")
        return None

    rel = name if not PurePosixPath(name).is_absolute() else PurePosixPath(name).name
    existing = state.images.get(rel)
    if existing is not None and existing.source.resolve() != source.resolve():
        rel = relative_path(source.resolve(), state.root.resolve()) if source.resolve().is_relative_to(state.root.resolve()) else rel
    if rel in state.images:
        reporter.error(f"image {rel!r} is listed by more than one entry or file; the later entry is skipped")
        return None

    state.image_folders.add(base)
    image = ImportedImage(rel, source, split=_entry_split(entry, split, rel), labeled=labeled,
                          label=OK_CLASS if labeled else None)
    image.declared_size = _declared_size(entry, reporter, file_name) if labeled else None
    image.metadata = _metadata(entry)
    state.images[rel] = image
    return image


def _read_unlabeled(entries: object, json_path: Path, reporter: Reporter, state: _CocoState) -> None:
    """Add the images of defectlab's ``unlabeled_images`` list, unlabeled, with their split and metadata."""
    if not isinstance(entries, list):
        return
    for entry in entries:
        file_name = entry.get("file_name") if isinstance(entry, dict) else None
        if not isinstance(file_name, str) or not file_name:
            reporter.error(f"{UNLABELED_KEY} entry {entry!r} needs a 'file_name'; image skipped")
            continue
        _make_image(entry, file_name, json_path, None, reporter, state, labeled=False)


def _resolve(name: str, json_path: Path, root: Path) -> tuple[Path | None, Path]:
    folder = json_path.parent
    bases = [folder, folder / "images", folder.parent / "images", root, root / "images"]
    for base in bases:
        candidate = base / name
        if candidate.is_file():
            return candidate, base
    return None, folder


def _entry_split(entry: dict[str, Any], file_split: str | None, rel: str) -> str | None:
    declared = entry.get("split")
    if isinstance(declared, str) and split_for_folder(declared) is not None:
        return split_for_folder(declared)
    if file_split is not None:
        return file_split
    return next((split_for_folder(part) for part in rel.split("/")[:-1] if split_for_folder(part)), None)


def _declared_size(entry: dict[str, Any], reporter: Reporter, file_name: str) -> tuple[int, int] | None:
    width, height = entry.get("width"), entry.get("height")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        return (width, height)
    reporter.warning(f"image {file_name!r} has no valid width and height ({width!r}, {height!r}); sizes are not checked")
    return None


def _metadata(entry: dict[str, Any]) -> dict[str, str]:
    metadata = entry.get("metadata")
    if not isinstance(metadata, dict):
        return {}
    return {str(key): str(value) for key, value in metadata.items()}


def _read_annotation(
    annotation: object, by_id: dict[object, ImportedImage], categories: dict[object, str], reporter: Reporter
) -> bool:
    """Add one annotation's regions to its image; return False when nothing of it could be imported."""
    if not isinstance(annotation, dict):
        reporter.error(f"annotation {annotation!r} is not an object; skipped")
        return False
    where = f"annotation id {annotation.get('id')!r}"
    image = by_id.get(annotation.get("image_id"))
    if image is None:
        reporter.error(f"{where}: image_id {annotation.get('image_id')!r} is not among the images; annotation skipped")
        return False
    class_name = categories.get(annotation.get("category_id"))
    if class_name is None:
        reporter.error(
            f"{where}: category_id {annotation.get('category_id')!r} is not among the categories "
            f"(ids {sorted(categories, key=str)}); annotation skipped"
        )
        return False

    regions = _annotation_regions(annotation, class_name, image.declared_size, reporter.about(f"{where} on {image.path}"))
    image.regions.extend(regions)
    return bool(regions)


def _annotation_regions(
    annotation: dict[str, Any], class_name: str, size: tuple[int, int] | None, reporter: Reporter
) -> list[Region]:
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, dict):
        mask = _rle_mask(segmentation, size, reporter)
        return [] if mask is None else [Region(kind="mask", class_name=class_name, mask=mask)]
    if isinstance(segmentation, list) and segmentation:
        regions = []
        for polygon in segmentation:
            values = _numbers(polygon, reporter, what="polygon")
            checked = None if values is None else check_pixel_polygon(values, reporter, size=size)
            if checked is not None:
                regions.append(Region(kind="polygon", class_name=class_name, polygon=checked))
        return regions
    bbox = _numbers(annotation.get("bbox"), reporter, what="bbox")
    if bbox is None or len(bbox) != 4:
        if bbox is not None:
            reporter.error(f"bbox has {len(bbox)} values; expected [x, y, width, height]; annotation skipped")
        return []
    box = check_pixel_box((bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]), reporter, size=size)
    return [] if box is None else [Region(kind="box", class_name=class_name, box=box)]


def _rle_mask(rle: dict[str, Any], size: tuple[int, int] | None, reporter: Reporter) -> Any:
    try:
        mask = decode_rle(rle)
    except InvalidInputError as error:
        reporter.error(f"{error}; mask skipped")
        return None
    if size is not None and mask.shape != (size[1], size[0]):
        reporter.error(
            f"RLE size {list(mask.shape)} (height, width) differs from the image's declared "
            f"{size[1]}x{size[0]}; mask skipped"
        )
        return None
    return check_mask(mask, reporter)


def _numbers(values: object, reporter: Reporter, *, what: str) -> list[float] | None:
    if not isinstance(values, list) or not all(
        isinstance(value, (int, float)) and not isinstance(value, bool) for value in values
    ):
        reporter.error(f"{what} {values!r} is not a list of numbers; {what} skipped")
        return None
    return [float(value) for value in values]


def _finish_labels(by_id: dict[object, ImportedImage], failed: set[object], reporter: Reporter) -> None:
    for image_id, image in by_id.items():
        if image.regions:
            image.label = None
        elif image_id in failed:
            image.label, image.labeled = None, False
            reporter.warning(f"every annotation of image {image.path!r} was rejected; image imported unlabeled")


def _add_unlisted_images(state: _CocoState) -> None:
    listed = {image.source.resolve() for image in state.images.values()}
    for folder in sorted(state.image_folders):
        for path in iter_files(folder):
            if not is_image_file(path) or path.resolve() in listed:
                continue
            rel = relative_path(path, folder)
            if rel in state.images:
                continue
            state.images[rel] = ImportedImage(rel, path)
            listed.add(path.resolve())
            state.log.warning(rel, "image is not listed in any COCO file; imported unlabeled")

