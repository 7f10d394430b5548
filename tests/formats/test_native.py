"""defectlab's own format: everything written is read back unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.errors import InvalidInputError
from defectlab.formats import ExportSet, describe_losses, detect_format, read_dataset, write_dataset
from defectlab.formats.native import MANIFEST, read_native
from defectlab.formats.records import OK_CLASS, ClassSpec, ExportImage, Region


def write_png(path: Path, width: int = 12, height: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.arange(width * height, dtype=np.uint8).reshape(height, width)).save(path)


def full_export_set(tmp_path: Path) -> ExportSet:
    source = tmp_path / "src.png"
    write_png(source)
    mask = np.zeros((8, 12), dtype=bool)
    mask[1:4, 2:7] = True
    mask[6, 10] = True
    images = [
        ExportImage("lineA/0001.png", source, 12, 8, split="train", labeled=True, metadata={"station": "3", "lot": "A7"},
                    regions=[Region("box", "scratch", box=(0.5, 1.25, 6.0, 7.0)),
                             Region("polygon", "dent", polygon=[1.0, 1.0, 5.5, 1.0, 3.0, 6.0]),
                             Region("mask", "dent", mask=mask)]),
        ExportImage("lineB/0001.png", source, 12, 8, split="dev", labeled=True, label=OK_CLASS),
        ExportImage("Prüfung Daten/划痕 01.png", source, 12, 8, split="test", labeled=True, label="scratch"),
        ExportImage("unlabeled one.png", source, 12, 8),
    ]
    classes = [ClassSpec("scratch", "0"), ClassSpec("dent", "7"), ClassSpec(OK_CLASS, "good")]
    return ExportSet(classes, images)


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    export_set = full_export_set(tmp_path)

    problems = write_dataset(export_set, tmp_path / "out", "native")
    batch = read_dataset(tmp_path / "out")

    assert problems == []
    assert describe_losses(export_set, "native") == []
    assert batch.format == "native"
    assert [problem.severity for problem in batch.problems] == ["warning"]
    assert "one-pixel island" in batch.problems[0].message
    assert batch.classes == export_set.classes
    assert len(batch.images) == len(export_set.images)
    for written, read in zip(export_set.images, batch.images, strict=True):
        assert read.path == written.path
        assert read.split == written.split
        assert read.label == written.label
        assert read.labeled == written.labeled
        assert read.metadata == written.metadata
        assert read.declared_size == (written.width, written.height)
        assert read.source.read_bytes() == written.source.read_bytes()
        assert len(read.regions) == len(written.regions)
        for original, copy in zip(written.regions, read.regions, strict=True):
            assert (copy.kind, copy.class_name) == (original.kind, original.class_name)
            assert copy.box == original.box
            assert copy.polygon == original.polygon
            if original.mask is not None:
                assert np.array_equal(copy.mask, original.mask)


def test_detected_from_manifest_file(tmp_path: Path) -> None:
    write_dataset(full_export_set(tmp_path), tmp_path / "out", "native")

    assert detect_format(tmp_path / "out") == "native"
    assert detect_format(tmp_path / "out" / MANIFEST) == "native"
    assert len(read_dataset(tmp_path / "out" / MANIFEST).images) == 4


def test_other_version_is_rejected(tmp_path: Path) -> None:
    write_dataset(full_export_set(tmp_path), tmp_path / "out", "native")
    manifest = tmp_path / "out" / MANIFEST
    document = json.loads(manifest.read_text(encoding="utf-8"))
    document["version"] = 99
    manifest.write_text(json.dumps(document), encoding="utf-8")

    batch = read_native(tmp_path / "out")

    assert batch.images == []
    assert "version 99" in batch.problems[0].message


def test_missing_image_and_bad_region_reported(tmp_path: Path) -> None:
    write_dataset(full_export_set(tmp_path), tmp_path / "out", "native")
    (tmp_path / "out" / "images" / "lineB" / "0001.png").unlink()
    manifest = tmp_path / "out" / MANIFEST
    document = json.loads(manifest.read_text(encoding="utf-8"))
    document["images"][0]["regions"][0]["box"] = [5, 5, 5, 9]
    manifest.write_text(json.dumps(document), encoding="utf-8")

    batch = read_native(tmp_path / "out")

    assert len(batch.images) == 3
    assert len(batch.images[0].regions) == 2
    errors = [problem.message for problem in batch.problems if problem.severity == "error"]
    assert len(errors) == 2
    assert "zero width" in errors[0]
    assert "missing" in errors[1]


def test_writer_rejects_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")

    with pytest.raises(InvalidInputError, match="not empty"):
        write_dataset(full_export_set(tmp_path), tmp_path / "out", "native")


def test_path_leaving_export_folder_is_skipped(tmp_path: Path) -> None:
    export_set = full_export_set(tmp_path)
    export_set.images[1].path = "../escape.png"

    problems = write_dataset(export_set, tmp_path / "out", "native")

    assert [problem.path for problem in problems] == ["../escape.png"]
    assert not (tmp_path / "escape.png").exists()


def test_images_folder_not_doubled(tmp_path: Path) -> None:
    source = tmp_path / "src.png"
    write_png(source)
    images = [
        ExportImage("images/train/big.png", source, 12, 8, labeled=True, label=OK_CLASS),
        ExportImage("images/a.png", source, 12, 8, labeled=True, label=OK_CLASS),
        ExportImage("a.png", source, 12, 8, labeled=True, label=OK_CLASS),
    ]

    write_dataset(ExportSet([], images), tmp_path / "out", "native")
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    again = {image.path for image in read_dataset(tmp_path / "out").images}

    assert {entry["path"]: entry["file"] for entry in manifest["images"]} == {
        "images/train/big.png": "images/train/big.png",
        "images/a.png": "images/images/a.png",
        "a.png": "images/a.png",
    }
    assert again == {"images/train/big.png", "images/a.png", "a.png"}
