"""Folder-per-class reader and writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from defectlab.formats import ExportSet, describe_losses, read_dataset, write_dataset
from defectlab.formats.folders import read_folders
from defectlab.formats.records import OK_CLASS, ClassSpec, ExportImage, ImportBatch, Region


def write_png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(path)


def by_path(batch: ImportBatch) -> dict:
    return {image.path: image for image in batch.images}


def test_class_folders_under_split_folders(tmp_path: Path) -> None:
    for rel in ("train/good/a.png", "train/scratch/b.png", "valid/scratch/c.png", "test/OK/d.png"):
        write_png(tmp_path / rel)

    batch = read_folders(tmp_path)
    images = by_path(batch)

    assert images["train/good/a.png"].label == OK_CLASS
    assert images["valid/scratch/c.png"].split == "dev"
    assert images["valid/scratch/c.png"].label == "scratch"
    assert images["test/OK/d.png"].label == OK_CLASS
    assert batch.problems == []
    assert {spec.name for spec in batch.classes} == {OK_CLASS, "scratch"}


def test_shared_prefix_stripped_and_free_is_ok(tmp_path: Path) -> None:
    for rel in ("MT_Blowhole/a.png", "MT_Free/b.png", "MT_Crack/sub/c.png"):
        write_png(tmp_path / rel)

    batch = read_folders(tmp_path)

    assert {spec.name: spec.external_id for spec in batch.classes} == {
        "Blowhole": "MT_Blowhole",
        "Crack": "MT_Crack",
        OK_CLASS: "MT_Free",
    }
    assert by_path(batch)["MT_Crack/sub/c.png"].label == "Crack"


def test_image_outside_class_folder_is_unlabeled_with_warning(tmp_path: Path) -> None:
    write_png(tmp_path / "loose.png")
    write_png(tmp_path / "dent" / "a.png")

    batch = read_folders(tmp_path)

    assert not by_path(batch)["loose.png"].labeled
    assert [problem.path for problem in batch.problems] == ["loose.png"]


def test_p6_unicode_class_and_file_names(tmp_path: Path) -> None:
    for rel in ("Prüfung Daten/défaut_ø.png", "Prüfung Daten/划痕 01.jpg", "Prüfung Daten/scratch 2.png"):
        write_png(tmp_path / "in" / rel)

    batch = read_folders(tmp_path / "in")

    assert sorted(image.path for image in batch.images) == sorted(
        ["Prüfung Daten/défaut_ø.png", "Prüfung Daten/划痕 01.jpg", "Prüfung Daten/scratch 2.png"]
    )
    assert {image.label for image in batch.images} == {"Prüfung Daten"}


def test_writer_round_trip_keeps_classes_splits_and_unlabeled(tmp_path: Path) -> None:
    source = tmp_path / "src.png"
    write_png(source)
    images = [
        ExportImage("lineA/0001.png", source, 4, 4, split="train", labeled=True, label="scratch"),
        ExportImage("lineB/0001.png", source, 4, 4, split="train", labeled=True, label="scratch"),
        ExportImage("c.png", source, 4, 4, split="dev", labeled=True, label=OK_CLASS),
        ExportImage("d.png", source, 4, 4, labeled=True, regions=[Region("box", "dent", box=(0, 0, 2, 2))]),
        ExportImage("e.png", source, 4, 4),
    ]
    export_set = ExportSet([ClassSpec("scratch"), ClassSpec(OK_CLASS, "good")], images)

    losses = describe_losses(export_set, "folders")
    problems = write_dataset(export_set, tmp_path / "out", "folders")
    again = by_path(read_dataset(tmp_path / "out", "folders"))

    assert problems == []
    assert any("1 box(es)" in loss for loss in losses)
    assert again["train/scratch/lineA/0001.png"].label == "scratch"
    assert again["train/scratch/lineB/0001.png"].split == "train"
    assert again["val/good/c.png"].label == OK_CLASS
    assert again["val/good/c.png"].split == "dev"
    assert again["dent/d.png"].label == "dent"
    assert not again["unlabeled/e.png"].labeled


def test_writer_does_not_nest_folders_twice(tmp_path: Path) -> None:
    write_png(tmp_path / "in" / "train" / "scratch" / "a.png")
    write_png(tmp_path / "in" / "train" / "good" / "b.png")
    batch = read_folders(tmp_path / "in")
    images = [
        ExportImage(image.path, image.source, 4, 4, split=image.split, label=image.label, labeled=image.labeled)
        for image in batch.images
    ]

    write_dataset(ExportSet(batch.classes, images), tmp_path / "out", "folders")

    assert sorted(image.path for image in read_folders(tmp_path / "out").images) == [
        "train/good/b.png",
        "train/scratch/a.png",
    ]
