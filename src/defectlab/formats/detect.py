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
5. ``masks``: a mask folder at the root (``masks/``, ``ground_truth/``...)
   that mirrors the image paths, as the masks writer makes it. This comes
   before MVTec because such an export of an MVTec project keeps its
   ``train/good/`` and ``test/`` folders in the image paths.
6. ``mvtec``: ``test/`` beside ``ground_truth/``, or beside ``train/good/``
   when ``test/`` has only good folders, in the root or in its subfolders.
7. ``masks``: image files paired with mask files.
8. ``folders``: images inside subfolders.
"""

from __future__ import annotations

import json

import logging
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from defectlab.errors import InvalidInputError, NotFoundError
from defectlab.formats._layout import is_image_file, iter_files, relative_path
from defectlab.formats.coco import find_coco_files, is_coco_document
from defectlab.formats.masks import MASK_FOLDERS, find_mask_pairs
from defectlab.formats.mvtec import find_object_folders
from defectlab.formats.native import MANIFEST
from defectlab.formats.voc import find_annotation_folder
from defectlab.formats.yolo import find_config, find_label_files

__all__ = ["check_format", "detect_format"]

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


def check_format(path: Path | str, format: str) -> None:
    """Check that the dataset at ``path`` has the files of ``format``, before a reader reads it.

    A reader given the wrong layout finds no labels and would import every
    image unlabeled, or nothing at all, without an error. This check stops
    that and names the format that was detected instead.

    Raises:
        InvalidInputError: The files that ``format`` needs are missing. The
            message names what was expected and which format was detected.
    """
    path = Path(path)
    folder = path.parent if path.is_file() and format not in _FILE_FORMATS else path
    if path.is_file() and format in _FILE_FORMATS:
        missing = None if _file_matches(path, format) else _FILE_FORMATS[format]
    else:
        missing = _missing_files(folder, format)
    if missing is None:
        return

    detected = _detect_quietly(path)
    if detected is not None and detected != format:
        fix = f"pass --format {detected}, which matches the files there, or omit --format to detect it"
    else:
        fix = "check the path, or omit --format to detect the layout"
    raise InvalidInputError(f"{path} is not a {format} dataset: {missing}; {fix}")


def _missing_files(folder: Path, format: str) -> str | None:
    """Return what ``format`` expected and did not find in ``folder``, or None when its files are there."""
    if format == "folders":
        detected = _detect_quietly(folder)
        if detected not in (None, "folders"):
            return f"it contains {detected} labels, which the folders format would ignore"
        return None if any(is_image_file(path) for path in iter_files(folder)) else "no image files found"
    matches, expected = _FOLDER_FORMATS[format]
    return None if matches(folder) else expected


def _file_matches(path: Path, format: str) -> bool:
    try:
        return _detect_file(path) == format
    except InvalidInputError:
        return False


def _detect_quietly(path: Path) -> str | None:
    try:
        return detect_format(path)
    except InvalidInputError:
        return None


def _detect_file(path: Path) -> str:
    suffix = path.suffix.lower()
    if path.name == MANIFEST:
        return "native"
    if suffix in (".yaml", ".yml"):
        return "yolo"
    if suffix == ".json":
        if is_coco_document(_read_json(path)):
            return "coco"
        raise InvalidInputError(f"{path.name} has no COCO 'images' list; pass a COCO JSON or a dataset folder")
    raise InvalidInputError(
        f"{path.name} is not a dataset file; pass a folder, a COCO JSON, a YOLO data.yaml or {MANIFEST}"
    )


def _read_json(path: Path) -> object:
    """Return the parsed JSON file; raise ``InvalidInputError`` naming the line and column when it is invalid."""
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise InvalidInputError(
            f"{path.name} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            "fix the file and import again"
        ) from error
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"{path.name} could not be read as UTF-8 text ({error}); check the file") from error


def _is_native(root: Path) -> bool:
    return (root / MANIFEST).is_file()


def _is_yolo(root: Path) -> bool:
    if find_config(root) is not None:
        return True
    return any(
        path.suffix.lower() == ".txt" and "labels" in PurePosixPath(relative_path(path, root)).parts[:-1]
        for path in iter_files(root)
    ) and any((root / name).is_dir() for name in ("images", "train", "valid", "val", "test"))


def _has_yolo_labels(root: Path) -> bool:
    return find_config(root) is not None or bool(find_label_files(root))


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


def _is_mask_tree(root: Path) -> bool:
    """Tell whether some mask sits at ``<mask folder>/<image path>`` below the root."""
    if not any(child.is_dir() and child.name.lower() in MASK_FOLDERS for child in root.iterdir()):
        return False
    for image, mask in find_mask_pairs(root).masks.items():
        folder, _, rest = mask.partition("/")
        if folder.lower() in MASK_FOLDERS and PurePosixPath(rest).with_suffix("") == PurePosixPath(image).with_suffix(""):
            return True
    return False


def _is_folders(root: Path) -> bool:
    return any(is_image_file(path) and path.parent != root for path in iter_files(root))


_CHECKS: list[tuple[str, Callable[[Path], bool]]] = [
    ("native", _is_native),
    ("yolo", _is_yolo),
    ("coco", _is_coco),
    ("voc", _is_voc),
    ("masks", _is_mask_tree),
    ("mvtec", _is_mvtec),
    ("masks", _is_masks),
    ("folders", _is_folders),
]

# Per format given by name: the check that a folder has that format's files,
# and the expected files that the error names when the check fails.
_FOLDER_FORMATS: dict[str, tuple[Callable[[Path], bool], str]] = {
    "native": (_is_native, f"no {MANIFEST} found"),
    "yolo": (_has_yolo_labels, "no YOLO data.yaml and no label .txt files in a labels/ folder or beside the images"),
    "coco": (_is_coco, "no COCO JSON file (with an 'images' list) found at the top or in annotations/"),
    "voc": (_is_voc, "no VOC XML files found in an Annotations/ folder or beside the images"),
    "mvtec": (_is_mvtec, "no MVTec object folder found (test/ beside ground_truth/, or beside train/good/)"),
    "masks": (_is_masks, "no image with a mask found (a <name>_mask.png beside it, or a masks/ or ground_truth/ folder)"),
}

_FILE_FORMATS = {
    "native": f"the file is not {MANIFEST}",
    "yolo": "the file is not a YOLO data.yaml",
    "coco": "the file is not a COCO JSON file with an 'images' list",
}
