"""Read and write inspection datasets in the formats people bring.

``read_dataset`` turns a folder (or a COCO JSON or YOLO ``data.yaml``) into
an ``ImportBatch`` for the importer. ``write_dataset`` writes an
``ExportSet`` in one format, after ``describe_losses`` has listed what that
format cannot hold. Formats:

* ``native``: defectlab's own lossless layout (``defectlab.json``).
* ``folders``: one folder per class, optionally under split folders.
* ``masks``: image and mask file pairs, in class folders or not.
* ``mvtec``: MVTec AD anomaly-detection layout.
* ``yolo``: YOLO detection and segmentation labels with ``data.yaml``.
* ``coco``: COCO JSON with boxes, polygons and RLE masks.
* ``voc``: Pascal VOC XML boxes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from defectlab.errors import InvalidInputError, NotFoundError
from defectlab.formats.coco import read_coco, write_coco
from defectlab.formats.detect import check_format, detect_format
from defectlab.formats.export import ExportSet, export_set_from_batch
from defectlab.formats.folders import read_folders, write_folders
from defectlab.formats.losses import describe_losses, describe_notes
from defectlab.formats.masks import read_masks, write_masks
from defectlab.formats.mvtec import read_mvtec, write_mvtec
from defectlab.formats.native import read_native, write_native
from defectlab.formats.records import ImportBatch, Problem
from defectlab.formats.summary import BatchSummary, summarize_batch
from defectlab.formats.voc import read_voc, write_voc
from defectlab.formats.yolo import read_yolo, write_yolo

__all__ = [
    "FORMATS",
    "BatchSummary",
    "check_format",
    "ExportSet",
    "describe_losses",
    "describe_notes",
    "detect_format",
    "export_set_from_batch",
    "read_dataset",
    "summarize_batch",
    "write_dataset",
]

logger = logging.getLogger(__name__)

_READERS: dict[str, Callable[[Path], ImportBatch]] = {
    "native": read_native,
    "folders": read_folders,
    "masks": read_masks,
    "mvtec": read_mvtec,
    "yolo": read_yolo,
    "coco": read_coco,
    "voc": read_voc,
}

_WRITERS: dict[str, Callable[[ExportSet, Path], list[Problem]]] = {
    "native": write_native,
    "folders": write_folders,
    "masks": write_masks,
    "mvtec": write_mvtec,
    "yolo": write_yolo,
    "coco": write_coco,
    "voc": write_voc,
}

FORMATS: tuple[str, ...] = tuple(_READERS)
"""Names of the formats ``read_dataset`` and ``write_dataset`` accept."""


def read_dataset(path: Path | str, format: str | None = None) -> ImportBatch:
    """Read the dataset at ``path`` without decoding any image.

    Args:
        path: A dataset folder, or a COCO JSON, YOLO ``data.yaml`` or
            ``defectlab.json`` file.
        format: One of ``FORMATS``; detected from the files when ``None``.

    Returns:
        The classes, the images with their labels, and a problem for every
        line, shape or file that was corrected or rejected.

    Raises:
        NotFoundError: ``path`` does not exist.
        InvalidInputError: ``format`` is unknown, the files it needs are
            missing under ``path``, or none was given and no layout was
            recognized.
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"dataset path {path} does not exist; check the path")
    name = format if format is not None else detect_format(path)
    reader = _READERS.get(name)
    if reader is None:
        raise InvalidInputError(f"unknown dataset format {name!r}; choose one of: {', '.join(FORMATS)}")
    if format is not None:
        check_format(path, format)
    if path.is_file() and name not in ("coco", "yolo", "native"):
        path = path.parent

    batch = reader(path)
    errors = sum(problem.severity == "error" for problem in batch.problems)
    logger.info(
        "read %s dataset %s: %d images, %d classes, %d errors, %d warnings",
        name, path, len(batch.images), len(batch.classes), errors, len(batch.problems) - errors,
    )
    return batch


def write_dataset(export_set: ExportSet, out_dir: Path | str, format: str) -> list[Problem]:
    """Write ``export_set`` into the new or empty folder ``out_dir`` in ``format``.

    Image files are copied byte for byte. Call ``describe_losses`` first to
    tell the user what the format cannot hold.

    Returns:
        Problems about single images (skipped or written with less
        information), each naming the image.

    Raises:
        InvalidInputError: ``format`` is unknown, or ``out_dir`` is a file
            or a folder that is not empty.
    """
    writer = _WRITERS.get(format)
    if writer is None:
        raise InvalidInputError(f"unknown export format {format!r}; choose one of: {', '.join(FORMATS)}")
    problems = writer(export_set, Path(out_dir))
    logger.info("wrote %d images as %s to %s with %d problems", len(export_set.images), format, out_dir, len(problems))
    return problems
