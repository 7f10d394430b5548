"""Folder-per-class layout: ``<class>/<image>``, optionally under ``train/``, ``val/`` and ``test/``.

The first folder below the root (or below a split folder) names the
image-level class; deeper folders are kept in the path. A no-defect folder
(``good``, ``ok``, ``MT_Free``...) means ``OK_CLASS``, and a folder named
``unlabeled`` contains images without a label.
"""

from __future__ import annotations

import logging
from pathlib import Path

from defectlab.formats._layout import (
    UNLABELED_FOLDER,
    class_specs_for_folders,
    folder_for_split,
    is_image_file,
    iter_files,
    relative_path,
    split_for_folder,
    unique_classes,
)
from defectlab.formats._problems import ProblemLog
from defectlab.formats._writing import (
    copy_image,
    dominant_class,
    label_kind,
    ok_folder_name,
    prepare_output_dir,
    safe_folder_name,
    strip_layout_prefix,
    target_path,
)
from defectlab.formats.export import ExportSet
from defectlab.formats.records import ExportImage, ImportBatch, ImportedImage, Problem

__all__ = ["folder_target_path", "read_folders", "write_folders"]

logger = logging.getLogger(__name__)

FORMAT = "folders"


def read_folders(root: Path) -> ImportBatch:
    """Read a folder-per-class dataset; image-level labels only.

    Problems: a warning for each image outside any class folder (imported
    unlabeled).
    """
    log = ProblemLog()
    found = [(path, relative_path(path, root)) for path in iter_files(root) if is_image_file(path)]
    placements = {rel: _class_folder(rel) for _, rel in found}
    specs = class_specs_for_folders(
        folder for _, folder in placements.values() if folder is not None and folder.lower() != UNLABELED_FOLDER
    )

    images = []
    for path, rel in found:
        split, folder = placements[rel]
        image = ImportedImage(path=rel, source=path, split=split)
        if folder is None:
            log.warning(rel, "image is not inside a class folder; imported unlabeled. Move it into a class folder")
        elif folder.lower() != UNLABELED_FOLDER:
            image.label = specs[folder].name
            image.labeled = True
        images.append(image)

    logger.info("read %d images in %d class folders from %s", len(images), len(specs), root)
    return ImportBatch(FORMAT, unique_classes(specs.values()), images, log.problems)


def write_folders(export_set: ExportSet, out_dir: Path) -> list[Problem]:
    """Write ``[<split>/]<class>/<path>``; regions are not written, only each image's class."""
    prepare_output_dir(out_dir)
    log = ProblemLog()
    ok_folder = ok_folder_name(export_set)
    claimed: set[Path] = set()

    for image in export_set.images:
        relative = _target_relative(image, ok_folder, log)
        target = target_path(out_dir, relative, log, image_path=image.path)
        if target is None:
            continue
        if target in claimed:
            log.error(image.path, f"another image was already written to {relative}; image skipped")
            continue
        claimed.add(target)
        copy_image(image, target, log)
    return log.problems


def _class_folder(rel: str) -> tuple[str | None, str | None]:
    """Return ``(split, class folder)`` of a relative image path."""
    folders = rel.split("/")[:-1]
    split = split_for_folder(folders[0]) if folders else None
    if split is not None:
        folders = folders[1:]
    return split, (folders[0] if folders else None)


def folder_target_path(image: ExportImage, ok_folder: str) -> str:
    """Return the path ``write_folders`` gives an image: ``[<split>/]<class>/<path>``."""
    return _target_relative(image, ok_folder, ProblemLog())


def _target_relative(image: ExportImage, ok_folder: str, log: ProblemLog) -> str:
    kind = label_kind(image)
    if kind == "unlabeled":
        folder = UNLABELED_FOLDER
    elif kind == "ok":
        folder = ok_folder
    elif kind == "class":
        folder = safe_folder_name(str(image.label))
    else:
        folder = safe_folder_name(str(dominant_class(image)))
        classes = sorted({region.class_name for region in image.regions})
        if len(classes) > 1:
            log.warning(image.path, f"regions of classes {classes} on one image; filed under the most frequent, {folder!r}")

    parts = [folder, strip_layout_prefix(image.path, folder)]
    split_folder = folder_for_split(image.split)
    if split_folder is not None:
        parts.insert(0, split_folder)
    return "/".join(parts)

