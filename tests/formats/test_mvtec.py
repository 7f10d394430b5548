"""MVTec AD reader and writer: both mask names, missing masks listed, good-only test sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from defectlab.formats import ExportSet, detect_format, read_dataset, write_dataset
from defectlab.formats.mvtec import read_mvtec
from defectlab.formats.records import OK_CLASS, ClassSpec, ExportImage, ImportBatch, Region


def write_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def blank(size: int = 16) -> np.ndarray:
    return np.zeros((size, size), dtype=np.uint8)


def square(size: int = 16) -> np.ndarray:
    mask = blank(size)
    mask[4:8, 4:8] = 255
    return mask


def by_path(batch: ImportBatch) -> dict:
    return {image.path: image for image in batch.images}


def make_bottle(root: Path) -> None:
    write_png(root / "bottle" / "train" / "good" / "000.png", blank())
    write_png(root / "bottle" / "test" / "good" / "000.png", blank())
    write_png(root / "bottle" / "test" / "scratch" / "000.png", blank())
    write_png(root / "bottle" / "test" / "scratch" / "001.png", blank())
    write_png(root / "bottle" / "test" / "scratch" / "002.png", blank())
    write_png(root / "bottle" / "ground_truth" / "scratch" / "000.png", square())
    write_png(root / "bottle" / "ground_truth" / "scratch" / "002_mask.png", square())


def test_l8_both_mask_names_and_missing_mask_listed(tmp_path: Path) -> None:
    make_bottle(tmp_path)

    batch = read_mvtec(tmp_path)
    images = by_path(batch)

    assert detect_format(tmp_path) == "mvtec"
    assert len(images) == 5
    assert images["bottle/train/good/000.png"].label == OK_CLASS
    assert images["bottle/train/good/000.png"].split == "train"
    assert images["bottle/test/good/000.png"].split == "test"
    assert int(images["bottle/test/scratch/000.png"].regions[0].mask.sum()) == 16
    assert int(images["bottle/test/scratch/002.png"].regions[0].mask.sum()) == 16
    assert images["bottle/test/scratch/001.png"].label == "scratch"
    assert images["bottle/test/scratch/001.png"].labeled
    assert [(problem.path, problem.severity) for problem in batch.problems] == [
        ("bottle/test/scratch/001.png", "warning")
    ]
    assert images["bottle/test/scratch/000.png"].metadata == {"object": "bottle"}


def test_l8_good_only_test_set_is_valid(tmp_path: Path) -> None:
    write_png(tmp_path / "train" / "good" / "000.png", blank())
    write_png(tmp_path / "test" / "good" / "000.png", blank())
    write_png(tmp_path / "test" / "good" / "001.png", blank())

    batch = read_dataset(tmp_path)

    assert batch.format == "mvtec"
    assert batch.problems == []
    assert [spec.name for spec in batch.classes] == [OK_CLASS]
    assert all(image.label == OK_CLASS and image.labeled for image in batch.images)


def test_orphan_and_empty_masks_reported(tmp_path: Path) -> None:
    write_png(tmp_path / "train" / "good" / "000.png", blank())
    write_png(tmp_path / "test" / "dent" / "000.png", blank())
    write_png(tmp_path / "ground_truth" / "dent" / "000_mask.png", blank())
    write_png(tmp_path / "ground_truth" / "dent" / "009_mask.png", square())

    batch = read_mvtec(tmp_path)

    assert by_path(batch)["test/dent/000.png"].label == "dent"
    assert [problem.path for problem in batch.problems] == ["ground_truth/dent/000_mask.png", "ground_truth/dent/009_mask.png"]


def test_writer_round_trip_keeps_masks(tmp_path: Path) -> None:
    source = tmp_path / "src.png"
    write_png(source, blank())
    mask = np.zeros((16, 16), dtype=bool)
    mask[2:5, 2:5] = True
    images = [
        ExportImage("lineA/0001.png", source, 16, 16, split="train", labeled=True, label=OK_CLASS),
        ExportImage("lineB/0001.png", source, 16, 16, split="test", labeled=True, label=OK_CLASS),
        ExportImage("lineA/0002.png", source, 16, 16, labeled=True, regions=[Region("mask", "dent", mask=mask)]),
        ExportImage("lineB/0002.png", source, 16, 16, labeled=True, regions=[Region("box", "dent", box=(0, 0, 4, 2))]),
        ExportImage("lineB/0003.png", source, 16, 16),
    ]

    problems = write_dataset(ExportSet([ClassSpec("dent")], images), tmp_path / "out", "mvtec")
    again = by_path(read_dataset(tmp_path / "out"))

    assert [problem.path for problem in problems] == ["lineB/0003.png"]
    assert sorted(again) == [
        "test/dent/lineA/0002.png",
        "test/dent/lineB/0002.png",
        "test/good/lineB/0001.png",
        "train/good/lineA/0001.png",
    ]
    assert np.array_equal(again["test/dent/lineA/0002.png"].regions[0].mask, mask)
    assert int(again["test/dent/lineB/0002.png"].regions[0].mask.sum()) == 8
