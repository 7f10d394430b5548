"""Folder-layout rules every reader shares: image files, split folders, class folders.

Paths handed to the project are relative, use ``/`` and keep the file name
exactly as on disk: no Unicode normalization, no case folding, spaces kept.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from defectlab.formats.records import OK_CLASS, ClassSpec

__all__ = [
    "CLASS_LIST_FILE",
    "IMAGE_EXTENSIONS",
    "UNLABELED_FOLDER",
    "class_specs_for_folders",
    "folder_for_split",
    "is_image_file",
    "is_ok_folder",
    "iter_files",
    "relative_path",
    "split_for_file_stem",
    "split_for_folder",
    "unique_classes",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
"""Extensions taken as images; the importer still checks each file's content."""

CLASS_LIST_FILE = "classes.txt"
"""File naming mask values 1, 2, 3... (or YOLO ids 0, 1, 2...), one class name a line."""

UNLABELED_FOLDER = "unlabeled"
"""Class-folder name for images without a label, as the folder writer writes them."""

_SPLIT_FOLDERS = {
    "train": "train",
    "training": "train",
    "val": "dev",
    "valid": "dev",
    "validation": "dev",
    "dev": "dev",
    "test": "test",
    "testing": "test",
}

# A no-defect folder name, optionally after a short prefix such as "MT_" (Magnetic-tile).
_OK_FOLDER = re.compile(
    r"^(?:[a-z0-9]{1,4}[_-])?(good|ok|free|normal|no[_-]?defect|defect[_-]?free|non[_-]?defective|negative)$",
    re.IGNORECASE,
)

_SKIPPED_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}


def is_image_file(path: Path) -> bool:
    """Tell whether the file name has an image extension (case-insensitive)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def iter_files(root: Path) -> Iterator[Path]:
    """Yield every file under ``root`` in sorted order, skipping hidden and OS metadata files."""
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not _is_skipped(name))
        for name in sorted(files):
            if not _is_skipped(name):
                yield Path(folder) / name


def relative_path(path: Path, root: Path) -> str:
    """Return ``path`` relative to ``root`` with ``/`` separators."""
    return path.relative_to(root).as_posix()


def split_for_folder(name: str) -> str | None:
    """Map a split folder name (``train``, ``val``, ``valid``, ``test``...) to a project split."""
    return _SPLIT_FOLDERS.get(name.lower())


def split_for_file_stem(stem: str) -> str | None:
    """Find a split word in a file name such as ``instances_train2017`` or ``val-labels``."""
    for word in re.findall(r"[a-z]+", stem.lower()):
        split = split_for_folder(word)
        if split is not None:
            return split
    return None


def folder_for_split(split: str | None) -> str | None:
    """Return the folder name writers use for a project split: ``train``, ``val`` or ``test``."""
    return {"train": "train", "dev": "val", "test": "test"}.get(split or "")


def is_ok_folder(name: str) -> bool:
    """Tell whether a class folder is for no-defect images (``good``, ``ok``, ``MT_Free``...)."""
    return _OK_FOLDER.match(name) is not None


def class_specs_for_folders(folder_names: Iterable[str]) -> dict[str, ClassSpec]:
    """Map class-folder names to defect classes.

    A prefix that every folder shares up to a ``_`` or ``-`` (``MT_`` in
    ``MT_Crack``, ``MT_Fray``) is dropped from the class name, and a
    no-defect folder becomes ``OK_CLASS``. When the name changes, the folder
    name is kept as ``external_id`` so that an export can restore it.
    """
    names = sorted(set(folder_names))
    prefix = _shared_prefix(names)

    specs: dict[str, ClassSpec] = {}
    for folder in names:
        name = OK_CLASS if is_ok_folder(folder) else folder[len(prefix) :]
        specs[folder] = ClassSpec(name, external_id=None if name == folder else folder)
    return specs


def unique_classes(specs: Iterable[ClassSpec]) -> list[ClassSpec]:
    """Return the classes in order, keeping the first of several with the same name."""
    seen: dict[str, ClassSpec] = {}
    for spec in specs:
        seen.setdefault(spec.name, spec)
    return list(seen.values())


def _shared_prefix(names: list[str]) -> str:
    if len(names) < 2:
        return ""
    prefix = os.path.commonprefix(names)
    cut = max(prefix.rfind("_"), prefix.rfind("-"))
    if cut < 0:
        return ""
    prefix = prefix[: cut + 1]
    if any(len(name) == len(prefix) for name in names):
        return ""
    return prefix


def _is_skipped(name: str) -> bool:
    return name.startswith(".") or name in _SKIPPED_NAMES
