"""YOLO (Ultralytics) detection and segmentation labels.

Each image has a text label file: ``images/<split>/a.jpg`` is labeled by
``labels/<split>/a.txt`` (the last ``images`` folder replaced by ``labels``),
or by ``a.txt`` beside it when no ``images`` folder exists. Each line is
``class x_center y_center width height`` (a box) or ``class x1 y1 x2 y2 ...``
(a polygon), in fractions 0..1 of the image as displayed. An empty or blank
file means no defect; a missing file means unlabeled.

``data.yaml`` gives the class ``names`` (a list, or a mapping from id to
name) and the split folders. A wrong ``path`` or a missing split folder is
reported and the layout on disk is used instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from defectlab.errors import InvalidInputError
from defectlab.formats._layout import is_image_file, iter_files, relative_path, split_for_folder
from defectlab.formats._problems import ProblemLog, Reporter
from defectlab.formats._shapes import check_normalized_box, check_normalized_polygon
from defectlab.formats._yolo_writer import UNASSIGNED_FOLDER, write_yolo
from defectlab.formats.records import OK_CLASS, ClassSpec, ImportBatch, ImportedImage, Region

__all__ = ["CONFIG_NAMES", "find_config", "find_label_files", "label_path_for", "read_yolo", "write_yolo"]

logger = logging.getLogger(__name__)

FORMAT = "yolo"

CONFIG_NAMES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
_SPLIT_KEYS = {"train": "train", "val": "dev", "test": "test"}


@dataclass
class YoloConfig:
    """Settings read from ``data.yaml``, checked against the folders on disk.

    Attributes:
        names: Class id to class name.
        split_folders: Relative folder (or image-list file) to project split.
        listed: Relative image paths named by image-list files, to project split.
    """

    names: dict[int, str] = field(default_factory=dict)
    split_folders: dict[str, str] = field(default_factory=dict)
    listed: dict[str, str] = field(default_factory=dict)


def find_config(root: Path) -> Path | None:
    """Return the dataset's YAML file: a standard name first, else any YAML at the root with ``names``."""
    for name in CONFIG_NAMES:
        if (root / name).is_file():
            return root / name
    for path in sorted(root.glob("*.y*ml")):
        if "names" in _yaml_or_empty(path):
            return path
    return None


def label_path_for(rel: str) -> str:
    """Return the label file of an image: the last ``images`` folder becomes ``labels``, the suffix ``.txt``."""
    parts = list(PurePosixPath(rel).with_suffix(".txt").parts)
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == "images":
            parts[index] = "labels"
            break
    return "/".join(parts)


def read_yolo(root: Path) -> ImportBatch:
    """Read a YOLO dataset folder (or the folder of the given ``data.yaml``).

    Problems, each naming the label file and, for a line, its number:
        * error: an unknown class id, a wrong number of values, a value that
          is not a number, or an odd-length or degenerate polygon.
        * error: values far outside 0..1, with a hint when they look like
          pixel coordinates, or a box of zero width or height.
        * error: a label file that cannot be read.
        * warning: a small overshoot outside 0..1, clipped.
        * warning: a wrong ``path`` or a missing split folder in ``data.yaml``.
        * warning: a label file without an image, and an image whose every
          line was rejected (imported unlabeled).
    """
    config_path = root if root.is_file() else find_config(root)
    root = root.parent if root.is_file() else root
    log = ProblemLog()
    config = _read_config(root, config_path, log)
    labels = find_label_files(root)

    images = []
    for path in iter_files(root):
        rel = relative_path(path, root)
        if not is_image_file(path) or "labels" in PurePosixPath(rel).parts[:-1]:
            continue
        image = ImportedImage(rel, path, split=_split_of(rel, config))
        label_rel = label_path_for(rel)
        if label_rel in labels:
            _read_label_file(image, labels.pop(label_rel), label_rel, config, log)
        images.append(image)

    for orphan in sorted(labels):
        log.warning(orphan, "label file has no matching image; ignored. Add the image or remove the label file")
    classes = _classes(config, images)
    logger.info("read %d images, %d labeled, from %s", len(images), sum(i.labeled for i in images), root)
    return ImportBatch(FORMAT, classes, images, log.problems)


def _classes(config: YoloConfig, images: list[ImportedImage]) -> list[ClassSpec]:
    if config.names:
        return [ClassSpec(name, external_id=str(class_id)) for class_id, name in sorted(config.names.items())]
    used = {region.class_name for image in images for region in image.regions}
    return [ClassSpec(name, external_id=name) for name in sorted(used, key=int)]


def _read_config(root: Path, config_path: Path | None, log: ProblemLog) -> YoloConfig:
    config = YoloConfig()
    if config_path is None:
        config.names = _names_from_class_list(root, log)
        return config

    rel = relative_path(config_path, root)
    document = _read_dataset_yaml(config_path, rel)
    config.names = _parse_names(document.get("names"), log.at(rel))
    declared = document.get("nc")
    if isinstance(declared, int) and config.names and declared != len(config.names):
        log.warning(rel, f"nc is {declared} but names lists {len(config.names)} classes; names is used")

    base = _base_folder(root, document.get("path"), log.at(rel))
    for key, split in _SPLIT_KEYS.items():
        entries = document.get(key)
        if not entries:
            continue
        if not isinstance(entries, list):
            entries = [entries]
        for entry in entries:
            _add_split_entry(config, root, base, str(entry), split, log.at(rel))
    return config


def _read_dataset_yaml(path: Path, rel: str) -> dict[str, Any]:
    """Return the dataset YAML as a mapping.

    Raises:
        InvalidInputError: The file cannot be read or parsed, or is not a mapping. Class names and
            splits come from this file, so importing without it would relabel images by class id.
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInputError(
            f"{rel}: dataset YAML could not be read ({error}). Check the file and import again. Nothing was imported."
        ) from error
    except yaml.YAMLError as error:
        raise InvalidInputError(
            f"{rel}: dataset YAML is invalid ({_yaml_problem(error)}); fix the file and import again. "
            "Nothing was imported."
        ) from error
    if not isinstance(document, dict):
        raise InvalidInputError(
            f"{rel}: dataset YAML is not a mapping of keys such as 'names' and 'train'; fix the file and import "
            "again. Nothing was imported."
        )
    return document


def _yaml_problem(error: yaml.YAMLError) -> str:
    """Return the parser's problem and its line and column in one line."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    if mark is None:
        return str(problem)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _yaml_or_empty(path: Path) -> dict[str, Any]:
    """Return a YAML file's mapping, or an empty one when it cannot be read or is not a mapping."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return document if isinstance(document, dict) else {}


def _parse_names(names: object, reporter: Reporter) -> dict[int, str]:
    if isinstance(names, list):
        return {index: str(name) for index, name in enumerate(names)}
    if isinstance(names, dict):
        parsed = {}
        for key, name in names.items():
            try:
                parsed[int(key)] = str(name)
            except (TypeError, ValueError):
                reporter.error(f"names key {key!r} is not a whole-number class id; class {name!r} skipped")
        return parsed
    reporter.warning("names is missing or not a list or mapping; class ids are used as class names")
    return {}


def _names_from_class_list(root: Path, log: ProblemLog) -> dict[int, str]:
    for candidate in (root / "classes.txt", root / "labels" / "classes.txt"):
        if candidate.is_file():
            lines = candidate.read_text(encoding="utf-8-sig").splitlines()
            return {index: line.strip() for index, line in enumerate(lines) if line.strip()}
    log.warning(".", "no data.yaml or classes.txt found; class ids are used as class names")
    return {}


def _base_folder(root: Path, path: object, reporter: Reporter) -> Path:
    if not path:
        return root
    for candidate in (root / str(path), Path(str(path))):
        if candidate.is_dir():
            return candidate
    reporter.warning(f"path {str(path)!r} does not exist; split folders are read relative to {root.name or root}")
    return root


def _add_split_entry(config: YoloConfig, root: Path, base: Path, entry: str, split: str, reporter: Reporter) -> None:
    target = base / entry
    if not target.exists() and (root / entry).exists():
        target = root / entry
    if not target.exists():
        reporter.warning(f"split folder {entry!r} does not exist; no images are assigned to {split!r} from it")
        return
    # A folder named for several splits (``val: images/train`` when a dataset
    # has no validation images) keeps the first: train, then val, then test.
    if target.is_dir():
        config.split_folders.setdefault(relative_path(target, root), split)
        return
    for line in target.read_text(encoding="utf-8-sig").splitlines():
        listed = (target.parent / line.strip()).resolve() if line.strip() else None
        if listed is not None and listed.is_relative_to(root.resolve()):
            config.listed.setdefault(relative_path(listed, root.resolve()), split)


def _split_of(rel: str, config: YoloConfig) -> str | None:
    if UNASSIGNED_FOLDER in PurePosixPath(rel).parts[:-1]:
        return None
    if rel in config.listed:
        return config.listed[rel]
    for folder, split in config.split_folders.items():
        if folder in (".", "") or rel.startswith(folder + "/"):
            return split
    for part in PurePosixPath(rel).parts[:-1]:
        if split_for_folder(part) is not None:
            return split_for_folder(part)
    return None


def find_label_files(root: Path) -> dict[str, Path]:
    """Return the label text files under ``root`` (in a ``labels`` folder or beside a same-stem image) by relative path."""
    files = {}
    for path in iter_files(root):
        if path.suffix.lower() == ".txt" and path.name.lower() != "classes.txt":
            files[relative_path(path, root)] = path
    return {rel: path for rel, path in files.items() if "labels" in PurePosixPath(rel).parts[:-1] or _beside(rel, root)}


def _beside(rel: str, root: Path) -> bool:
    """Tell whether a text file sits next to an image of the same stem (a flat YOLO folder)."""
    stem_path = root / PurePosixPath(rel).with_suffix("")
    return any(stem_path.with_suffix(suffix).is_file() for suffix in (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"))


def _read_label_file(image: ImportedImage, path: Path, rel: str, config: YoloConfig, log: ProblemLog) -> None:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        log.error(rel, f"label file could not be read ({error}); image imported unlabeled")
        return

    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        image.label, image.labeled = OK_CLASS, True
        return
    for number, line in lines:
        region = _parse_line(line, log.at(rel, number), config.names)
        if region is not None:
            image.regions.append(region)
    if image.regions:
        image.labeled = True
    else:
        log.warning(rel, "every line of the label file was rejected; image imported unlabeled")


def _parse_line(line: str, reporter: Reporter, names: dict[int, str]) -> Region | None:
    tokens = line.split()
    class_name = _class_name(tokens[0], reporter, names)
    values = _numbers(tokens[1:], reporter)
    if class_name is None or values is None:
        return None

    if len(values) == 4:
        box = check_normalized_box(values, reporter)
        return None if box is None else Region(kind="box", class_name=class_name, box=box, normalized=True)
    if len(values) >= 6 and len(values) % 2 == 0:
        polygon = check_normalized_polygon(values, reporter)
        return None if polygon is None else Region(kind="polygon", class_name=class_name, polygon=polygon, normalized=True)
    if len(values) >= 5 and len(values) % 2:
        reporter.error(
            f"{len(values)} values after the class id; a polygon needs x, y pairs, so one value is missing or extra; "
            "line skipped"
        )
    else:
        reporter.error(
            f"{len(values)} values after the class id; expected 4 (x_center y_center width height) "
            "or at least 3 x, y pairs (a polygon); line skipped"
        )
    return None


def _class_name(token: str, reporter: Reporter, names: dict[int, str]) -> str | None:
    try:
        class_id = int(token)
    except ValueError:
        reporter.error(f"class id {token!r} is not a whole number; line skipped")
        return None
    if not names:
        return str(class_id)
    if class_id not in names:
        reporter.error(
            f"class id {class_id} is not in the dataset's names (ids {min(names)}..{max(names)}); "
            "add it to names in data.yaml or fix the line; line skipped"
        )
        return None
    return names[class_id]


def _numbers(tokens: list[str], reporter: Reporter) -> list[float] | None:
    try:
        return [float(token) for token in tokens]
    except ValueError:
        bad = next(token for token in tokens if not _is_number(token))
        reporter.error(f"value {bad!r} is not a number; line skipped")
        return None


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
