"""Pascal VOC reader and writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from defectlab.formats import ExportSet, describe_losses, detect_format, read_dataset, write_dataset
from defectlab.formats.records import OK_CLASS, ClassSpec, ExportImage, ImportBatch, Region
from defectlab.formats.voc import read_voc


def write_png(path: Path, width: int = 40, height: int = 30) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((height, width), dtype=np.uint8)).save(path)


def write_xml(path: Path, filename: str, objects: str, *, width: int = 40, height: int = 30) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<annotation><filename>{filename}</filename><size><width>{width}</width><height>{height}</height>"
        f"<depth>1</depth></size>{objects}</annotation>",
        encoding="utf-8",
    )


def box(name: str, values: tuple[object, object, object, object]) -> str:
    xmin, ymin, xmax, ymax = values
    return (
        f"<object><name>{name}</name><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
        f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
    )


def by_path(batch: ImportBatch) -> dict:
    return {image.path: image for image in batch.images}


def test_reads_boxes_sizes_splits_and_ok(tmp_path: Path) -> None:
    write_png(tmp_path / "JPEGImages" / "a.png")
    write_png(tmp_path / "JPEGImages" / "b.png")
    write_png(tmp_path / "JPEGImages" / "c.png")
    write_xml(tmp_path / "Annotations" / "a.xml", "a.png", box("dent", (1, 2, 11, 12)))
    write_xml(tmp_path / "Annotations" / "b.xml", "b.png", "")
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "val.txt").write_text("a\nb\n")

    batch = read_voc(tmp_path)
    images = by_path(batch)

    assert detect_format(tmp_path) == "voc"
    assert images["a.png"].regions[0].box == (1.0, 2.0, 11.0, 12.0)
    assert images["a.png"].declared_size == (40, 30)
    assert images["a.png"].split == "dev"
    assert images["b.png"].label == OK_CLASS
    assert not images["c.png"].labeled
    assert batch.problems == []


def test_bad_objects_rejected_on_their_own(tmp_path: Path) -> None:
    write_png(tmp_path / "JPEGImages" / "a.png")
    objects = box("dent", (1, 2, "x", 12)) + box("dent", (5, 5, 5, 9)) + box("dent", (30, 20, 45, 25)) + "<object/>"
    write_xml(tmp_path / "Annotations" / "a.xml", "a.png", objects)

    batch = read_voc(tmp_path)

    assert [region.box for region in batch.images[0].regions] == [(30.0, 20.0, 40.0, 25.0)]
    assert [(problem.severity, problem.message.split(":")[0]) for problem in batch.problems] == [
        ("error", "object 1"),
        ("error", "object 2"),
        ("warning", "object 3"),
        ("error", "object 4"),
    ]


def test_broken_xml_and_missing_image_reported(tmp_path: Path) -> None:
    write_png(tmp_path / "JPEGImages" / "a.png")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text("<annotation><filename>a.png")
    write_xml(tmp_path / "Annotations" / "ghost.xml", "ghost.png", "")

    batch = read_voc(tmp_path)

    assert not batch.images[0].labeled
    assert [problem.path for problem in batch.problems] == ["Annotations/a.xml", "Annotations/ghost.xml"]


def test_writer_round_trip_polygons_as_boxes(tmp_path: Path) -> None:
    source = tmp_path / "src.png"
    write_png(source)
    images = [
        ExportImage("lineA/0001.png", source, 40, 30, split="train", labeled=True,
                    regions=[Region("polygon", "dent", polygon=[2, 3, 12, 3, 7, 13])]),
        ExportImage("lineB/0001.png", source, 40, 30, split="test", labeled=True,
                    regions=[Region("box", "dent", box=(1.5, 2, 8, 9))]),
        ExportImage("lineB/0002.png", source, 40, 30, labeled=True, label=OK_CLASS),
        ExportImage("lineB/0003.png", source, 40, 30),
    ]
    export_set = ExportSet([ClassSpec("dent")], images)

    losses = describe_losses(export_set, "voc")
    problems = write_dataset(export_set, tmp_path / "out", "voc")
    again = by_path(read_dataset(tmp_path / "out"))

    assert problems == []
    assert any("1 polygon(s)" in loss for loss in losses)
    assert again["lineA/0001.png"].regions[0].box == (2.0, 3.0, 12.0, 13.0)
    assert again["lineA/0001.png"].split == "train"
    assert again["lineB/0001.png"].regions[0].box == (1.5, 2.0, 8.0, 9.0)
    assert again["lineB/0001.png"].split == "test"
    assert again["lineB/0002.png"].label == OK_CLASS
    assert not again["lineB/0003.png"].labeled


def test_difficult_objects_kept_and_warned_once(tmp_path: Path) -> None:
    difficult = box("dent", (1, 2, 11, 12)).replace("<bndbox>", "<difficult>1</difficult><bndbox>")
    for name in ("a", "b"):
        write_png(tmp_path / "JPEGImages" / f"{name}.png")
        write_xml(tmp_path / "Annotations" / f"{name}.xml", f"{name}.png", difficult + box("scratch", (2, 2, 5, 5)))

    batch = read_voc(tmp_path)
    warnings = [problem for problem in batch.problems if "difficult" in problem.message]

    assert [len(image.regions) for image in batch.images] == [2, 2]
    assert len(warnings) == 1
    assert warnings[0].path == "Annotations/a.xml"
    assert "2 object(s) in 2 file(s)" in warnings[0].message
