"""Input of the format writers: the classes and the stored images to write."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from defectlab.errors import ImageDecodeError
from defectlab.formats._problems import ProblemLog, Reporter
from defectlab.formats.records import ClassSpec, ExportImage, ImportBatch, Problem, Region
from defectlab.images.decode import decode_image

__all__ = ["ExportSet", "export_set_from_batch"]

_EXIF_ORIENTATION = 0x0112


@dataclass
class ExportSet:
    """Classes and images to write in one format.

    Attributes:
        classes: Defect classes, in the order writers number them. A class
            named ``OK_CLASS`` may be listed to carry the source's folder
            name for no-defect images (``external_id``); writers never give
            it a class number.
        images: Images with their labels, regions in pixels of the displayed
            image, splits and metadata.
    """

    classes: list[ClassSpec] = field(default_factory=list)
    images: list[ExportImage] = field(default_factory=list)


def export_set_from_batch(batch: ImportBatch) -> tuple[ExportSet, list[Problem]]:
    """Turn a reader's batch straight into an export set, for converting between formats.

    Each image's displayed size (EXIF orientation applied) is read from its
    header, normalized regions are scaled to pixels, and masks must match
    the displayed size. Without a project in between, this is what the
    importer does, minus storing anything.

    Returns:
        The export set, and problems for images that could not be opened
        (skipped), declared sizes that differ from the file (warning) and
        masks of the wrong size (region skipped).
    """
    log = ProblemLog()
    images = []
    for image in batch.images:
        size = _displayed_size(image.source, log.at(image.path))
        if size is None:
            continue
        if image.declared_size is not None and image.declared_size != size:
            log.warning(
                image.path,
                f"label file declares {image.declared_size[0]}x{image.declared_size[1]} but the image is "
                f"{size[0]}x{size[1]} as displayed; coordinates are kept as written",
            )
        regions = [region for region in (_to_pixels(r, size, log.at(image.path)) for r in image.regions) if region]
        images.append(
            ExportImage(
                path=image.path,
                source=image.source,
                width=size[0],
                height=size[1],
                split=image.split,
                label=image.label,
                regions=regions,
                labeled=image.labeled,
                metadata=dict(image.metadata),
            )
        )
    return ExportSet(classes=list(batch.classes), images=images), log.problems


def _displayed_size(path: Path, reporter: Reporter) -> tuple[int, int] | None:
    """Return ``(width, height)`` after EXIF orientation, reading only the header when Pillow can."""
    try:
        with Image.open(path) as opened:
            width, height = opened.size
            orientation = opened.getexif().get(_EXIF_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError):
        try:
            decoded = decode_image(path.read_bytes(), source=reporter.path)
        except (ImageDecodeError, OSError) as error:
            reporter.error(f"image could not be read ({error}); image skipped")
            return None
        return decoded.width, decoded.height
    # Orientations 5 to 8 turn the picture by a quarter, so width and height swap.
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _to_pixels(region: Region, size: tuple[int, int], reporter: Reporter) -> Region | None:
    width, height = size
    if region.kind == "mask":
        if region.mask is not None and region.mask.shape != (height, width):
            reporter.error(
                f"mask of class {region.class_name!r} is {region.mask.shape[1]}x{region.mask.shape[0]} but the "
                f"image is {width}x{height}; region skipped"
            )
            return None
        return region
    if not region.normalized:
        return region
    if region.box is not None:
        x_min, y_min, x_max, y_max = region.box
        return Region("box", region.class_name, box=(x_min * width, y_min * height, x_max * width, y_max * height))
    polygon = [value * (width if index % 2 == 0 else height) for index, value in enumerate(region.polygon or [])]
    return Region("polygon", region.class_name, polygon=polygon)
