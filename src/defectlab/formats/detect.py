"""Recognize a dataset's format from its files, without decoding any image.

The checks run from the most specific layout to the most general, because a
general one matches more: a COCO or YOLO folder also looks like images in
folders. The first match wins:

1. ``native``: ``defectlab.json``.
2. ``yolo``: a ``data.yaml`` (or another YAML with ``names``), or ``labels/``
   text files beside ``images/``.
3. ``coco``: a JSON file with COCO's ``images`` list, at the root or in
   ``annotations/``.
4. ``voc``: an ``Annotations/`` folder of XML files, or XML files beside images.
5. ``mvtec``: ``train/good/`` and ``test/`` in the root or in its subfolders.
6. ``masks``: image files paired with mask files.
7. ``folders``: images inside subfolders.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from defectlab.errors import InvalidInputError, NotFoundError
from defectlab.formats._layout import is_image_file, iter_files, relative_path
from defectlab.formats.coco import find_coco_files, is_coco_document, load_json
from defectlab.formats.masks import find_mask_pairs
from defectlab.formats.mvtec import find_object_folders
from defectlab.formats.native import MANIFEST
from defectlab.formats.voc import find_annotation_folder
from defectlab.formats.yolo import find_config

__all__ = ["detect_format"]

logger = logging.getLogger(__name__)


def detect_format(path: Path | str) -> str:
    """Return the name of the format of the dataset at ``path`` (a folder, or a JSON or YAML file).

    Raises:
        NotFoundError: ``path`` does not exist.
        InvalidInputError: No known layout matches; the message lists what was looked for.
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"dataset path {path} does not exist; check the path")
    if path.is_file():
        return _detect_file(path)

    for name, matches in _CHECKS:
        if matches(path):
            logger.info("detected %s format in %s", name, path)
            return name
    raise InvalidInputError(
        f"no dataset format recognized in {path}: expected {MANIFEST}, a YOLO data.yaml or labels/ folder, "
        "a COCO JSON, a VOC Annotations/ folder, an MVTec train/good/ and test/ layout, image and mask pairs, "
        "or images inside class folders; pass the format by name if the layout is unusual"
    )


def _detect_file(path: Path) -> str:
    suffix = path.suffix.lower()
    if path.name == MANIFEST:
        return "native"
    if suffix in (".yaml", ".yml"):
        return "yolo"
    if suffix == ".json":
        if is_coco_document(load_json(path)):
            return "coco"
        raise InvalidInputError(f"{path.name} has no COCO 'images' list; pass a COCO JSON or a dataset folder")
    raise InvalidInputError(
        f"{path.name} is not a dataset file; pass a folder, a COCO JSON, a YOLO data.yaml or {MANIFEST}"
    )


def _is_native(root: Path) -> bool:
    return (root / MANIFEST).is_file()


def _is_yolo(root: Path) -> bool:
    if find_config(root) is not None:
        return True
    return any(
        path.suffix.lower() == ".txt" and "labels" in PurePosixPath(relative_path(path, root)).parts[:-1]
        for path in iter_files(root)
    ) and any((root / name).is_dir() for name in ("images", "train", "valid", "val", "test"))


def _is_coco(root: Path) -> bool:
    return bool(find_coco_files(root))


def _is_voc(root: Path) -> bool:
    annotations = find_annotation_folder(root)
    if annotations is not None:
        return any(path.suffix.lower() == ".xml" for path in iter_files(annotations))
    return any(
        path.suffix.lower() == ".xml" and any(path.with_suffix(ext).is_file() for ext in (".jpg", ".png", ".jpeg", ".bmp"))
        for path in iter_files(root)
    )


def _is_mvtec(root: Path) -> bool:
    return bool(find_object_folders(root))


def _is_masks(root: Path) -> bool:
    return bool(find_mask_pairs(root).masks)


def _is_folders(root: Path) -> bool:
    return any(is_image_file(path) and path.parent != root for path in iter_files(root))


_CHECKS: list[tuple[str, Callable[[Path], bool]]] = [
    ("native", _is_native),
    ("yolo", _is_yolo),
    ("coco", _is_coco),
    ("voc", _is_voc),
    ("mvtec", _is_mvtec),
    ("masks", _is_masks),
    ("folders", _is_folders),
]
