"""What a format reader hands to the importer, before any pixel is stored.

Readers parse label files and folder layouts only. They do not decode the
images: the importer decodes each image once, converts normalized
coordinates with the decoded (EXIF-applied) size, checks declared sizes and
masks against it, and stores everything in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["ClassSpec", "ExportImage", "ImportBatch", "ImportedImage", "Problem", "Region", "SPLITS", "OK_CLASS"]

OK_CLASS = "ok"
"""Class name of the explicit no-defect outcome."""

SPLITS = ("train", "dev", "test")

Severity = Literal["error", "warning"]
RegionKind = Literal["box", "polygon", "mask"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the input, tied to the file (and line) it came from.

    ``error`` means the item named was not imported; ``warning`` means it was
    imported after a documented correction (such as clipping a box).
    """

    path: str
    message: str
    severity: Severity = "error"
    line: int | None = None

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}, line {self.line}"
        return f"{self.severity}: {where}: {self.message}"


@dataclass
class Region:
    """One box, polygon or mask of one defect class on one image.

    Coordinates are pixels of the image as displayed (EXIF applied) unless
    ``normalized`` is set, in which case they are fractions 0..1 of the
    displayed width and height and the importer scales them.

    Attributes:
        box: ``(x_min, y_min, x_max, y_max)``.
        polygon: Flat list ``[x1, y1, x2, y2, ...]`` with at least 3 points.
        mask: Boolean array ``(H, W)`` of the image's size.
    """

    kind: RegionKind
    class_name: str
    box: tuple[float, float, float, float] | None = None
    polygon: list[float] | None = None
    mask: np.ndarray | None = None
    normalized: bool = False


@dataclass
class ImportedImage:
    """One image found by a reader, with its labels and where it came from.

    Attributes:
        path: Relative path inside the project, with ``/`` separators and the
            file name kept exactly as on disk.
        source: File to read the bytes from.
        label: Image-level class. ``OK_CLASS`` means explicitly no defect (an
            empty label file, a ``good`` folder); ``None`` means unlabeled.
            For region tasks it is ``None`` whenever ``regions`` is not empty.
        regions: Boxes, polygons and masks.
        labeled: Whether any label source covered this image. An image with
            no label file is unlabeled and never counted as a negative.
        declared_size: ``(width, height)`` written in the label file, checked
            against the decoded image.
    """

    path: str
    source: Path
    split: str | None = None
    label: str | None = None
    regions: list[Region] = field(default_factory=list)
    labeled: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    declared_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class ClassSpec:
    """A defect class as the source names it; ``external_id`` is the source's own key (a COCO id, a YOLO index)."""

    name: str
    external_id: str | None = None


@dataclass
class ImportBatch:
    """Everything one reader found under one path."""

    format: str
    classes: list[ClassSpec]
    images: list[ImportedImage]
    problems: list[Problem] = field(default_factory=list)


@dataclass
class ExportImage:
    """One stored image handed to a format writer.

    ``regions`` are in pixels of the displayed image (never normalized), and
    ``source`` contains the original bytes as imported, so a writer copies it
    unchanged.
    """

    path: str
    source: Path
    width: int
    height: int
    split: str | None = None
    label: str | None = None
    regions: list[Region] = field(default_factory=list)
    labeled: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
