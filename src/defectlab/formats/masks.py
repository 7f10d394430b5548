"""Image-plus-mask pairs: a pixel mask file for each image.

A mask is found for an image, in this order:

1. beside it, with a suffix: ``scan.jpg`` and ``scan_mask.png`` (also
   ``-mask`` and ``_gt``);
2. beside it, with the same stem, when the image is not a PNG and the PNG
   has mask pixels (see ``has_mask_pixels``): ``Imgs/exp1.jpg`` and
   ``Imgs/exp1.png`` (Magnetic-tile). Two images of one stem, such as a
   16-bit ``part.png`` and ``part.tif``, stay two images;
3. in a parallel folder: ``images/a/scan.jpg`` and ``masks/a/scan.png``;
4. in a mask folder at the root that mirrors the image tree:
   ``scratch/003.png`` and ``ground_truth/scratch/003.png``.

Mask folders are named ``masks``, ``mask``, ``ground_truth``, ``groundtruth``,
``gt`` or ``segmentation``. When the top folders are class folders (one of
them is a no-defect folder such as ``good`` or ``MT_Free``, or the masks sit
in a ``ground_truth`` tree), each folder names the class of its masks.
Otherwise ``classes.txt`` at the root names mask values 1, 2, 3... one per
line, and a binary mask without it gets the class ``defect``.

An all-zero mask means no defect, and an image without a mask is unlabeled.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from defectlab.formats._layout import (
    CLASS_LIST_FILE,
    class_specs_for_folders,
    is_image_file,
    is_ok_folder,
    iter_files,
    relative_path,
    split_for_folder,
    unique_classes,
)
from defectlab.formats._masks_writer import write_masks
from defectlab.formats._problems import ProblemLog, Reporter
from defectlab.formats._shapes import check_mask
from defectlab.errors import ImageDecodeError
from defectlab.formats.masks_values import MAX_INDEX_VALUE, MaskReading, MaskValueSummary, read_mask_file
from defectlab.formats.records import OK_CLASS, ClassSpec, ImportBatch, ImportedImage, Region
from defectlab.images.decode import decode_image

__all__ = [
    "DEFAULT_CLASS", "MASK_FOLDERS", "find_mask_pairs", "has_mask_pixels", "read_class_list", "read_masks", "write_masks",
]

logger = logging.getLogger(__name__)

FORMAT = "masks"

MASK_FOLDERS = frozenset({"masks", "mask", "ground_truth", "groundtruth", "gt", "segmentation"})
IMAGE_FOLDERS = frozenset({"images", "image", "imgs", "img"})
MASK_SUFFIXES = ("_mask", "-mask", "_gt")
DEFAULT_CLASS = "defect"

# Minimum share of pixels that the two most frequent values of an
# anti-aliased binary mask cover. The minimum over the 964 Magnetic-tile
# masks is 97.5%.
_BINARY_COVERAGE = 0.95


@dataclass
class MaskPairs:
    """Images found under a root and the mask file paired with each.

    Attributes:
        root: Folder the relative paths start from.
        images: ``(file, relative path)`` of every image that is not a mask.
        masks: Relative image path to the relative path of its mask.
        orphans: Relative paths of mask files that match no image.
    """

    root: Path
    images: list[tuple[Path, str]] = field(default_factory=list)
    masks: dict[str, str] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)


def find_mask_pairs(root: Path) -> MaskPairs:
    """Sort the image files under ``root`` into images and masks, and pair them."""
    files = {relative_path(path, root): path for path in iter_files(root) if is_image_file(path)}
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for rel in files:
        pure = PurePosixPath(rel)
        groups[(str(pure.parent), pure.stem)].append(rel)

    mask_rels = {rel for rel, path in files.items() if _looks_like_mask(rel, path, groups)}
    pairs = MaskPairs(root)
    used: set[str] = set()
    for rel, path in files.items():
        if rel in mask_rels:
            continue
        pairs.images.append((path, rel))
        mask_rel = _find_mask(rel, groups, mask_rels)
        if mask_rel is not None:
            pairs.masks[rel] = mask_rel
            used.add(mask_rel)
    pairs.orphans = sorted(mask_rels - used)
    return pairs


def read_class_list(root: Path, log: ProblemLog) -> list[str] | None:
    """Read ``classes.txt`` (one class name a line, for mask values 1, 2, ...), if present."""
    path = root / CLASS_LIST_FILE
    if not path.is_file():
        return None
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    except (OSError, UnicodeDecodeError) as error:
        log.error(CLASS_LIST_FILE, f"class list could not be read ({error}); save it as UTF-8 text")
        return None
    return [name for name in names if name]


def read_masks(root: Path) -> ImportBatch:
    """Read image-plus-mask pairs under ``root``.

    Problems:
        * error: a mask that cannot be decoded.
        * warning: a mask without an image.
        * warning: an image in a defect-class folder without a mask or with
          an empty mask, and a non-empty mask in a no-defect folder.
        * warning: a lossy (JPEG) mask, snapped index values, one-pixel islands.
        * warning: one summary of unusual mask values for the whole dataset.
    """
    log = ProblemLog()
    pairs = find_mask_pairs(root)
    reader = _MaskLabeler(root, log, pairs)

    images = [reader.label(path, rel) for path, rel in pairs.images]
    for orphan in pairs.orphans:
        log.warning(orphan, "mask has no matching image; ignored. Add the image or remove the mask")
    reader.summary.report(log, root.name or str(root))

    unlabeled = sum(not image.labeled for image in images)
    logger.info("read %d images, %d with masks, %d unlabeled from %s", len(images), len(pairs.masks), unlabeled, root)
    return ImportBatch(FORMAT, reader.classes(), images, log.problems)


class _MaskLabeler:
    """Labels each image from its mask and its class folder."""

    def __init__(self, root: Path, log: ProblemLog, pairs: MaskPairs) -> None:
        self.log = log
        self.pairs = pairs
        self.class_list = read_class_list(root, log)
        self.summary = MaskValueSummary()
        self.used_classes: list[ClassSpec] = []
        self.folder_specs: dict[str, ClassSpec] = {}
        folders = {_class_folder(rel) for _, rel in pairs.images}
        if _uses_class_folders(folders - {None}, pairs):
            self.folder_specs = class_specs_for_folders(folder for folder in folders if folder is not None)

    def classes(self) -> list[ClassSpec]:
        named = [ClassSpec(name, external_id=str(value)) for value, name in enumerate(self.class_list or [], 1)]
        return unique_classes([*self.folder_specs.values(), *named, *self.used_classes])

    def label(self, path: Path, rel: str) -> ImportedImage:
        folders = rel.split("/")[:-1]
        split = next((split_for_folder(name) for name in folders if split_for_folder(name)), None)
        image = ImportedImage(path=rel, source=path, split=split)
        folder_spec = self.folder_specs.get(_class_folder(rel) or "")
        mask_rel = self.pairs.masks.get(rel)
        reading = None
        if mask_rel is not None:
            reporter = self.log.at(mask_rel)
            reading = read_mask_file(self.pairs.root / mask_rel, reporter, class_count=self._class_count(folder_spec))
            if reading is not None:
                self.summary.add(reporter.path, reading)
                image.regions = self._regions(reading, folder_spec, reporter)
        self._set_label(image, folder_spec, has_mask=mask_rel is not None, reading=reading)
        return image

    def _set_label(
        self, image: ImportedImage, spec: ClassSpec | None, *, has_mask: bool, reading: MaskReading | None
    ) -> None:
        if spec is not None and spec.name == OK_CLASS:
            if image.regions:
                self.log.warning(
                    image.path,
                    f"the mask marks defect pixels but the image is in the no-defect folder "
                    f"{spec.external_id or OK_CLASS!r}; imported as ok and the mask ignored. "
                    "Move the image to its defect class or clear the mask",
                )
                image.regions = []
            image.label, image.labeled = OK_CLASS, True
        elif image.regions:
            image.labeled = True
        elif spec is not None:
            image.label, image.labeled = spec.name, True
            reason = "mask is empty" if reading is not None else "no mask was found"
            if not has_mask or reading is not None:
                self.log.warning(image.path, f"{reason}; imported with the image-level class {spec.name!r} only")
        elif reading is not None:
            image.label, image.labeled = OK_CLASS, True

    def _regions(self, reading: MaskReading, spec: ClassSpec | None, reporter: Reporter) -> list[Region]:
        if spec is not None:
            if len(reading.layers) > 1:
                reporter.warning(
                    f"mask holds class values {sorted(reading.layers)}; all are read as the folder's class {spec.name!r}"
                )
            layers = {1: np.logical_or.reduce(list(reading.layers.values()))} if reading.layers else {}
        else:
            layers = reading.layers

        regions = []
        for value, layer in layers.items():
            name = spec.name if spec is not None else self._class_for_value(value, reading, reporter)
            mask = check_mask(layer, reporter)
            if mask is not None:
                regions.append(Region(kind="mask", class_name=name, mask=mask))
        return regions

    def _class_for_value(self, value: int, reading: MaskReading, reporter: Reporter) -> str:
        if self.class_list is not None and value <= len(self.class_list):
            return self.class_list[value - 1]
        if reading.kind == "binary":
            name = DEFAULT_CLASS
        else:
            name = str(value)
            reporter.warning(f"mask value {value} has no class name; add {CLASS_LIST_FILE} with one name a line")
        if name not in {spec.name for spec in self.used_classes}:
            self.used_classes.append(ClassSpec(name))
        return name

    def _class_count(self, spec: ClassSpec | None) -> int | None:
        return None if spec is not None or self.class_list is None else len(self.class_list)


def _looks_like_mask(rel: str, path: Path, groups: dict[tuple[str, str], list[str]]) -> bool:
    """Tell whether a file is a mask: by its folder or name, or as a mask-like PNG beside a same-stem image."""
    pure = PurePosixPath(rel)
    if any(part.lower() in MASK_FOLDERS for part in pure.parts[:-1]):
        return True
    folder = str(pure.parent)
    for suffix in MASK_SUFFIXES:
        if pure.stem.lower().endswith(suffix) and (folder, pure.stem[: -len(suffix)]) in groups:
            return True
    siblings = groups.get((folder, pure.stem), [])
    if pure.suffix.lower() != ".png" or all(PurePosixPath(other).suffix.lower() == ".png" for other in siblings):
        return False
    return has_mask_pixels(path)


def has_mask_pixels(path: Path) -> bool:
    """Tell whether an image file contains mask-like pixels: one channel (or equal channels) and few values.

    Few values means at most ``MAX_INDEX_VALUE + 1`` distinct values
    (background plus index classes), or two values that cover at least
    ``_BINARY_COVERAGE`` of the pixels, as in a 0/255 mask with anti-aliased
    edges. A file that cannot be decoded is not taken as a mask, so the
    importer reports it as a broken image.
    """
    try:
        pixels = decode_image(path.read_bytes(), source=path.name).pixels
    except (ImageDecodeError, OSError):
        return False
    if pixels.ndim == 3:
        if not all(np.array_equal(pixels[..., 0], pixels[..., channel]) for channel in range(1, pixels.shape[2])):
            return False
        pixels = pixels[..., 0]
    counts = np.unique(pixels, return_counts=True)[1]
    if len(counts) <= MAX_INDEX_VALUE + 1:
        return True
    return np.sort(counts)[-2:].sum() >= _BINARY_COVERAGE * pixels.size


def _find_mask(rel: str, groups: dict[tuple[str, str], list[str]], mask_rels: set[str]) -> str | None:
    pure = PurePosixPath(rel)
    for folder in _mask_folder_candidates(pure):
        for stem in (pure.stem, *(pure.stem + suffix for suffix in MASK_SUFFIXES)):
            for candidate in groups.get((folder, stem), []):
                if candidate != rel and candidate in mask_rels:
                    return candidate
    return None


def _mask_folder_candidates(pure: PurePosixPath) -> list[str]:
    folders = [str(pure.parent)]
    parts = list(pure.parts[:-1])
    for index, part in enumerate(parts):
        if part.lower() in IMAGE_FOLDERS:
            for mask_folder in sorted(MASK_FOLDERS):
                folders.append("/".join([*parts[:index], mask_folder, *parts[index + 1 :]]))
            break
    for mask_folder in sorted(MASK_FOLDERS):
        folders.append("/".join([mask_folder, *parts]))
    return folders


def _class_folder(rel: str) -> str | None:
    """Return the first folder of the path that is neither a split folder nor an image folder."""
    for part in rel.split("/")[:-1]:
        if split_for_folder(part) is None and part.lower() not in IMAGE_FOLDERS:
            return part
    return None


def _uses_class_folders(folders: set[str | None], pairs: MaskPairs) -> bool:
    if any(folder is not None and is_ok_folder(folder) for folder in folders):
        return True
    return any(
        part.lower() in ("ground_truth", "groundtruth") for mask in pairs.masks.values() for part in mask.split("/")[:-1]
    )
