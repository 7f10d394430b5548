"""Steps every format writer shares: the output folder, safe paths, copies and shape conversions."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
from PIL import Image

from defectlab.errors import InvalidInputError
from defectlab.formats._layout import is_ok_folder, split_for_folder
from defectlab.formats._problems import ProblemLog
from defectlab.formats.export import ExportSet
from defectlab.formats.records import OK_CLASS, ClassSpec, ExportImage, Region

__all__ = [
    "LabelKind",
    "copy_image",
    "defect_classes",
    "label_kind",
    "ok_folder_name",
    "prepare_output_dir",
    "dominant_class",
    "region_box",
    "safe_folder_name",
    "strip_layout_prefix",
    "target_path",
    "write_json",
    "write_png_mask",
    "write_text",
]

LabelKind = Literal["regions", "ok", "class", "unlabeled"]


def prepare_output_dir(out_dir: Path) -> None:
    """Create ``out_dir``; reject a folder that already contains files, so nothing is overwritten.

    Raises:
        InvalidInputError: ``out_dir`` is a file or a folder that is not empty.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInputError(f"export target {out_dir} is a file; choose a new or empty folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise InvalidInputError(f"export folder {out_dir} is not empty; choose a new or empty folder")
    out_dir.mkdir(parents=True, exist_ok=True)


def target_path(out_dir: Path, relative: str, log: ProblemLog, *, image_path: str) -> Path | None:
    """Join a project-relative path under ``out_dir``; reject paths that would leave it."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts or "\\" in relative:
        log.error(image_path, f"path {relative!r} is not a relative path inside the export folder; image skipped")
        return None
    return out_dir.joinpath(*parts)


def copy_image(image: ExportImage, target: Path, log: ProblemLog) -> bool:
    """Copy the image's original bytes unchanged; report and return False when that fails."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image.source, target)
    except OSError as error:
        log.error(image.path, f"image could not be copied from {image.source} ({error}); image skipped")
        return False
    return True


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text through a temporary file and a rename, so no half-written file remains."""
    _write_atomic(path, text.encode("utf-8"))


def write_json(path: Path, document: Any) -> None:
    """Write a JSON document (UTF-8, non-ASCII kept) atomically."""
    write_text(path, json.dumps(document, ensure_ascii=False, indent=1) + "\n")


def write_png_mask(path: Path, mask: np.ndarray) -> None:
    """Write a mask as a single-channel 8-bit PNG: 0 background, class values or 255 for defect."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png", delete=False) as handle:
        temporary = Path(handle.name)
    try:
        Image.fromarray(mask.astype(np.uint8), mode="L").save(temporary, format="PNG")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def safe_folder_name(name: str) -> str:
    """Turn a class name into a single folder name: path separators become ``_``."""
    cleaned = name.replace("/", "_").replace("\\", "_").strip()
    return "_" if cleaned in ("", ".", "..") else cleaned


def dominant_class(image: ExportImage) -> str | None:
    """Return the class that most of the image's regions carry (the first in a tie)."""
    names = [region.class_name for region in image.regions]
    return max(names, key=names.count) if names else None


def strip_layout_prefix(path: str, folder: str, *, leading: str | None = None) -> str:
    """Drop leading folders that a layout writer adds again (``leading``, a split folder, ``folder``).

    An image read from a folder-per-class or MVTec layout carries its split
    and class folders in its path. Exporting it to such a layout again
    would otherwise nest them twice (``train/scratch/train/scratch/a.png``).
    """
    parts = path.split("/")
    if leading is not None and len(parts) > 1 and parts[0] == leading:
        parts = parts[1:]
    if len(parts) > 1 and split_for_folder(parts[0]) is not None:
        parts = parts[1:]
    if len(parts) > 1 and parts[0] == folder:
        parts = parts[1:]
    return "/".join(parts)


def label_kind(image: ExportImage) -> LabelKind:
    """Tell what an image's label is: regions, explicit ok, an image-level class, or unlabeled."""
    if not image.labeled:
        return "unlabeled"
    if image.regions:
        return "regions"
    if image.label is None or image.label == OK_CLASS:
        return "ok"
    return "class"


def defect_classes(export_set: ExportSet) -> list[ClassSpec]:
    """Return the defect classes in order, adding any class used by an image but missing from the list."""
    classes = [spec for spec in export_set.classes if spec.name != OK_CLASS]
    known = {spec.name for spec in classes}
    for image in export_set.images:
        used = [region.class_name for region in image.regions]
        if image.label is not None:
            used.append(image.label)
        for name in used:
            if name != OK_CLASS and name not in known:
                classes.append(ClassSpec(name))
                known.add(name)
    return classes


def ok_folder_name(export_set: ExportSet) -> str:
    """Return the folder name for no-defect images: the source's own name when known, else ``good``."""
    for spec in export_set.classes:
        if spec.name == OK_CLASS and spec.external_id and is_ok_folder(spec.external_id):
            return spec.external_id
    return "good"


def region_box(region: Region) -> tuple[float, float, float, float] | None:
    """Return the pixel box ``(x_min, y_min, x_max, y_max)`` that encloses a region, or None if empty."""
    if region.kind == "box" and region.box is not None:
        return region.box
    if region.kind == "polygon" and region.polygon:
        xs, ys = region.polygon[0::2], region.polygon[1::2]
        return (min(xs), min(ys), max(xs), max(ys))
    if region.kind == "mask" and region.mask is not None and region.mask.any():
        rows = np.flatnonzero(region.mask.any(axis=1))
        columns = np.flatnonzero(region.mask.any(axis=0))
        return (float(columns[0]), float(rows[0]), float(columns[-1] + 1), float(rows[-1] + 1))
    return None


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
        handle.write(data)
        temporary = Path(handle.name)
    try:
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
