"""MVTec AD layout for anomaly detection.

One object folder contains ``train/good/`` (defect-free images only),
``test/<class>/`` (``good`` and one folder per defect class) and
``ground_truth/<class>/`` with one mask per defect image, named
``<stem>_mask.png`` (MVTec AD) or ``<stem>.png``. The root may be one object
folder or a folder of object folders; each image gets the ``object``
metadata key. A test folder with only good images is valid.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

import numpy as np

from defectlab.formats._layout import (
    class_specs_for_folders,
    is_image_file,
    is_ok_folder,
    iter_files,
    relative_path,
    split_for_folder,
    unique_classes,
)
from defectlab.formats._problems import ProblemLog
from defectlab.formats._shapes import check_mask
from defectlab.formats._writing import (
    copy_image,
    dominant_class,
    label_kind,
    ok_folder_name,
    prepare_output_dir,
    safe_folder_name,
    strip_layout_prefix,
    target_path,
    write_png_mask,
)
from defectlab.formats._raster import region_mask
from defectlab.formats.export import ExportSet
from defectlab.formats.masks_values import MaskValueSummary, read_mask_file
from defectlab.formats.records import ClassSpec, ExportImage, ImportBatch, ImportedImage, Problem, Region

__all__ = ["OBJECT_KEY", "find_object_folders", "is_object_folder", "read_mvtec", "write_mvtec"]

logger = logging.getLogger(__name__)

FORMAT = "mvtec"

GROUND_TRUTH = "ground_truth"
MASK_SUFFIX = "_mask"
OBJECT_KEY = "object"
"""Metadata key naming the MVTec object folder (``bottle``, ``cable``...) an image came from."""


def is_object_folder(folder: Path) -> bool:
    """Tell whether ``folder`` has the MVTec object layout.

    The layout is ``test/`` and ``ground_truth/``, or ``test/`` with only
    no-defect folders (``good``) beside ``train/good/``. In both, ``train/``
    contains no-defect folders only. Without ``ground_truth/``, defect
    folders under ``test/`` mean a folder-per-class dataset, as the folders
    writer makes it, and so do defect folders under ``train/`` or a ``val/``
    split folder in any case.
    """
    test, train = folder / "test", folder / "train"
    if not test.is_dir():
        return False
    splits = {split_for_folder(child.name) for child in folder.iterdir() if child.is_dir()}
    train_classes = _subfolder_names(train)
    if "dev" in splits or not all(is_ok_folder(name) for name in train_classes):
        return False
    if (folder / GROUND_TRUTH).is_dir():
        return True
    return bool(train_classes) and all(is_ok_folder(name) for name in _subfolder_names(test))


def _subfolder_names(folder: Path) -> list[str]:
    return [child.name for child in folder.iterdir() if child.is_dir()] if folder.is_dir() else []


def find_object_folders(root: Path) -> list[Path]:
    """Return ``root`` when it is an object folder, else its object subfolders."""
    if is_object_folder(root):
        return [root]
    return sorted(child for child in root.iterdir() if child.is_dir() and is_object_folder(child))


def read_mvtec(root: Path) -> ImportBatch:
    """Read one MVTec object folder or a folder of them.

    Problems:
        * error: a mask that cannot be decoded.
        * warning: each defect image without a mask, listed one by one.
        * warning: a mask without an image, an empty mask, or a non-empty
          mask of a good image.
        * warning: the mask-value reports of ``masks_values``.
    """
    log = ProblemLog()
    summary = MaskValueSummary()
    images: list[ImportedImage] = []
    folder_names: set[str] = set()

    objects = find_object_folders(root)
    for folder in objects:
        found = _object_images(root, folder)
        folder_names.update(class_folder for _, _, class_folder, _ in found)
        images.extend(_read_object(root, folder, found, log, summary))

    specs = class_specs_for_folders(folder_names)
    for image in images:
        _rename_classes(image, specs)
    summary.report(log, root.name or str(root))
    logger.info("read %d images of %d object(s) from %s", len(images), len(objects), root)
    return ImportBatch(FORMAT, unique_classes(specs.values()), images, log.problems)


def write_mvtec(export_set: ExportSet, out_dir: Path) -> list[Problem]:
    """Write one MVTec object folder: ok training images to ``train/good``, everything else to ``test``.

    Region images are filed under their most frequent class with a 0/255
    mask ``ground_truth/<class>/<stem>_mask.png`` that contains all regions.
    Subfolders of the image path are kept below the class folder, so equal
    file names in different folders both survive. Unlabeled images and
    image-level defect classes have no place in the layout and are skipped
    with a problem each.

    When every image has the ``object`` metadata key (set by the MVTec
    reader), each object gets its own object folder, so several objects
    and their image paths survive a round trip. ``train/good/`` is created
    even when empty, because MVTec tools and the format detection expect it.
    """
    prepare_output_dir(out_dir)
    log = ProblemLog()
    good = ok_folder_name(export_set)
    by_object = all(image.metadata.get(OBJECT_KEY) for image in export_set.images)
    objects: set[str] = set()
    for image in export_set.images:
        object_folder = safe_folder_name(image.metadata[OBJECT_KEY]) if by_object else ""
        objects.add(object_folder)
        _write_image(image, out_dir / object_folder if object_folder else out_dir, good, log)
    for object_folder in objects or {""}:
        (out_dir / object_folder / "train" / good).mkdir(parents=True, exist_ok=True)
        (out_dir / object_folder / "test").mkdir(parents=True, exist_ok=True)
    return log.problems


def _object_images(root: Path, folder: Path) -> list[tuple[Path, str, str, str | None]]:
    """Return ``(file, relative path, class folder, split)`` of each image in an object folder."""
    found = []
    for split_name in sorted(child.name for child in folder.iterdir() if child.is_dir()):
        split = split_for_folder(split_name)
        if split is None:
            continue
        for path in iter_files(folder / split_name):
            parts = PurePosixPath(relative_path(path, folder / split_name)).parts
            if is_image_file(path) and len(parts) > 1:
                found.append((path, relative_path(path, root), parts[0], split))
    return found


def _read_object(
    root: Path,
    folder: Path,
    found: list[tuple[Path, str, str, str | None]],
    log: ProblemLog,
    summary: MaskValueSummary,
) -> list[ImportedImage]:
    masks = _index_masks(folder)
    used: set[str] = set()
    images = []
    for path, rel, class_folder, split in found:
        image = ImportedImage(rel, path, split=split, labeled=True, metadata={OBJECT_KEY: folder.name})
        key = _mask_key(relative_path(path, folder).split("/", 1)[1])
        mask_path = masks.get(key)
        if mask_path is not None:
            used.add(key)
        _label_image(image, class_folder, mask_path, relative_path(mask_path, root) if mask_path else "", log, summary)
        images.append(image)

    for key in sorted(set(masks) - used):
        log.warning(relative_path(masks[key], root), "mask has no matching test image; ignored")
    return images


def _index_masks(folder: Path) -> dict[str, Path]:
    """Map ``<class>/<subfolders>/<stem>`` to each mask file under ``ground_truth``."""
    ground_truth = folder / GROUND_TRUTH
    if not ground_truth.is_dir():
        return {}
    masks = {}
    for path in iter_files(ground_truth):
        if is_image_file(path):
            masks[_mask_key(relative_path(path, ground_truth))] = path
    return masks


def _mask_key(rel: str) -> str:
    pure = PurePosixPath(rel)
    stem = pure.stem[: -len(MASK_SUFFIX)] if pure.stem.endswith(MASK_SUFFIX) else pure.stem
    return str(pure.parent / stem)


def _label_image(
    image: ImportedImage,
    class_folder: str,
    mask_path: Path | None,
    mask_rel: str,
    log: ProblemLog,
    summary: MaskValueSummary,
) -> None:
    image.label = class_folder
    if mask_path is None:
        if not is_ok_folder(class_folder):
            log.warning(
                image.path,
                f"defect image has no mask in {GROUND_TRUTH}/{class_folder}/ (looked for "
                f"'{PurePosixPath(image.path).stem}{MASK_SUFFIX}.png' and '{PurePosixPath(image.path).stem}.png'); "
                f"imported with the image-level class {class_folder!r} only",
            )
        return

    reporter = log.at(mask_rel)
    reading = read_mask_file(mask_path, reporter)
    if reading is None:
        return
    summary.add(mask_rel, reading)
    if not reading.layers:
        if not is_ok_folder(class_folder):
            reporter.warning(f"mask is empty; {image.path} imported with the image-level class {class_folder!r} only")
        return
    if is_ok_folder(class_folder):
        reporter.warning(f"mask marks defect pixels on the good image {image.path}; the mask is ignored")
        return
    mask = check_mask(np.logical_or.reduce(list(reading.layers.values())), reporter)
    if mask is not None:
        image.regions = [Region(kind="mask", class_name=class_folder, mask=mask)]
        image.label = None


def _rename_classes(image: ImportedImage, specs: dict[str, ClassSpec]) -> None:
    if image.label is not None:
        image.label = specs[image.label].name
    for region in image.regions:
        region.class_name = specs[region.class_name].name


def _write_image(image: ExportImage, out_dir: Path, good: str, log: ProblemLog) -> None:
    kind = label_kind(image)
    if kind in ("unlabeled", "class"):
        reason = "is unlabeled" if kind == "unlabeled" else f"has the class {image.label!r} but no mask"
        log.warning(image.path, f"image {reason}; MVTec needs a mask for every defect image, so it is not written")
        return

    folder = good if kind == "ok" else safe_folder_name(str(dominant_class(image)))
    if len({region.class_name for region in image.regions}) > 1:
        log.warning(image.path, f"regions of several classes on one image; all written as {folder!r}")
    split = "train" if kind == "ok" and image.split in (None, "train") else "test"
    inner = strip_layout_prefix(image.path, folder, leading=image.metadata.get(OBJECT_KEY))
    relative = f"{split}/{folder}/{inner}"
    target = target_path(out_dir, relative, log, image_path=image.path)
    if target is None or not copy_image(image, target, log):
        return
    if kind == "regions":
        mask = np.zeros((image.height, image.width), dtype=bool)
        for region in image.regions:
            mask |= region_mask(region, image.width, image.height)
        stem = PurePosixPath(inner).with_suffix("")
        write_png_mask(out_dir / GROUND_TRUTH / folder / f"{stem}{MASK_SUFFIX}.png", mask.astype(np.uint8) * 255)

