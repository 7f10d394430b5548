"""Detection and reading of the real inspection datasets, when they are present beside the repository."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from defectlab.formats import detect_format, read_dataset
from defectlab.formats.records import OK_CLASS, ImportedImage

# The datasets sit beside the repository (``<repo>/../shared/datasets``), never inside it.
DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"

pytestmark = pytest.mark.skipif(not DATASETS.is_dir(), reason=f"real datasets not found at {DATASETS}")


def image_class(image: ImportedImage) -> str | None:
    return image.label if image.label is not None else image.regions[0].class_name


def test_magnetic_tile_is_masks_in_class_folders() -> None:
    root = DATASETS / "magnetic-tile"

    batch = read_dataset(root)
    counts = Counter(image_class(image) for image in batch.images)

    assert detect_format(root) == "masks"
    assert {spec.name for spec in batch.classes} == {"Blowhole", "Break", "Crack", "Fray", "Uneven", OK_CLASS}
    assert counts == {OK_CLASS: 697, "Blowhole": 81, "Uneven": 76, "Break": 56, "Crack": 36, "Fray": 18}
    assert all(image.labeled for image in batch.images)
    assert all(not image.regions for image in batch.images if image.label == OK_CLASS)
    assert all(region.kind == "mask" for image in batch.images for region in image.regions)
    assert [problem for problem in batch.problems if problem.severity == "error"] == []


def test_magnetic_tile_defect_images_carry_masks() -> None:
    batch = read_dataset(DATASETS / "magnetic-tile")

    defect_images = [image for image in batch.images if image.label != OK_CLASS]
    with_masks = [image for image in defect_images if image.regions]
    empty_mask_warnings = [problem for problem in batch.problems if "mask is empty" in problem.message]

    assert len(with_masks) + len(empty_mask_warnings) == len(defect_images)
    assert all(image.regions[0].mask.any() for image in with_masks)


def test_kolektorsdd_is_yolo_segmentation() -> None:
    root = DATASETS / "kolektorsdd"

    batch = read_dataset(root)
    with_polygons = [image for image in batch.images if image.regions]
    ok = [image for image in batch.images if image.label == OK_CLASS]

    assert detect_format(root) == "yolo"
    assert len(batch.images) == 320
    assert len(with_polygons) == 42
    assert len(ok) == 320 - 42
    assert all(image.labeled for image in batch.images)
    assert all(region.kind == "polygon" for image in with_polygons for region in image.regions)
    assert [spec.name for spec in batch.classes] == ["defect"]
    assert [problem.severity for problem in batch.problems] == ["warning", "warning"]
