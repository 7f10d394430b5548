"""YOLO reader and writer: label lines, empty versus missing files, names, round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from defectlab.formats import ExportSet, describe_losses, export_set_from_batch, read_dataset, write_dataset
from defectlab.formats.records import OK_CLASS, ClassSpec, ExportImage, ImportBatch, Region
from defectlab.formats.yolo import label_path_for, read_yolo


def write_image(path: Path, width: int, height: int, *, exif_orientation: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if exif_orientation is None:
        image.save(path)
        return
    exif = Image.Exif()
    exif[0x0112] = exif_orientation
    image.save(path, exif=exif)


def make_dataset(root: Path, labels: dict[str, str | None], *, names: object, size: tuple[int, int] = (64, 48)) -> None:
    root.mkdir(parents=True, exist_ok=True)
    config = {"path": ".", "train": "images/train", "names": names}
    (root / "data.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    for rel, text in labels.items():
        write_image(root / "images" / "train" / rel, *size)
        if text is not None:
            label = root / "labels" / "train" / Path(rel).with_suffix(".txt")
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(text, encoding="utf-8")


def by_path(batch: ImportBatch) -> dict:
    return {image.path: image for image in batch.images}


def test_label_path_replaces_last_images_folder() -> None:
    assert label_path_for("images/train/a.jpg") == "labels/train/a.txt"
    assert label_path_for("images/x/images/b.png") == "images/x/labels/b.txt"
    assert label_path_for("flat/c.png") == "flat/c.txt"


def test_l1_small_overshoots_clipped_pixel_values_rejected(tmp_path: Path) -> None:
    lines = "4 0.3040 0.5003 0.6080 1.0004\n0 -0.0010 0.5 0.1 0.1\n1 670 0 842 114\n2 0.5 0.5 0.2 0.2\n"
    make_dataset(tmp_path, {"wide.png": lines}, names=["a", "b", "c", "d", "e"], size=(1920, 1080))

    batch = read_yolo(tmp_path)
    image = by_path(batch)["images/train/wide.png"]

    assert image.labeled
    assert [region.class_name for region in image.regions] == ["e", "a", "c"]
    assert all(region.normalized for region in image.regions)
    assert image.regions[0].box == pytest.approx((0.0, 0.0001, 0.608, 1.0))
    assert image.regions[1].box == pytest.approx((0.0, 0.45, 0.049, 0.55))
    problems = {(problem.line, problem.severity) for problem in batch.problems}
    assert problems == {(1, "warning"), (2, "warning"), (3, "error")}
    rejected = next(problem for problem in batch.problems if problem.line == 3)
    assert rejected.path == "labels/train/wide.txt"
    assert "pixel coordinates" in rejected.message


def test_l1_clipped_boxes_stay_inside_image_after_export(tmp_path: Path) -> None:
    make_dataset(tmp_path / "in", {"wide.png": "0 -0.0010 0.5 0.1 0.1\n"}, names=["a"], size=(1920, 1080))
    export_set, _ = export_set_from_batch(read_yolo(tmp_path / "in"))

    assert export_set.images[0].regions[0].box == pytest.approx((0.0, 486.0, 94.08, 594.0))


def test_l5_empty_blank_and_missing_label_files(tmp_path: Path) -> None:
    make_dataset(tmp_path, {"good_01.png": "", "unk_02.png": None, "good_03.png": "\n"}, names=["scratch"])

    images = by_path(read_yolo(tmp_path))

    assert images["images/train/good_01.png"].label == OK_CLASS
    assert images["images/train/good_01.png"].labeled
    assert images["images/train/good_03.png"].label == OK_CLASS
    assert images["images/train/good_03.png"].labeled
    assert images["images/train/unk_02.png"].label is None
    assert not images["images/train/unk_02.png"].labeled


def test_l5_difference_survives_export(tmp_path: Path) -> None:
    make_dataset(tmp_path / "in", {"good_01.png": "", "unk_02.png": None, "good_03.png": "\n"}, names=["scratch"])
    export_set, _ = export_set_from_batch(read_yolo(tmp_path / "in"))

    write_dataset(export_set, tmp_path / "out", "yolo")
    images = by_path(read_dataset(tmp_path / "out"))

    assert (tmp_path / "out" / "labels" / "train" / "good_01.txt").read_text() == ""
    assert not (tmp_path / "out" / "labels" / "train" / "unk_02.txt").exists()
    assert images["images/train/good_01.png"].label == OK_CLASS
    assert images["images/train/good_03.png"].label == OK_CLASS
    assert not images["images/train/unk_02.png"].labeled


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("7 0.5 0.5 0.1 0.1", "not in the dataset's names"),
        ("x 0.5 0.5 0.1 0.1", "not a whole number"),
        ("0 0.5 0.5 0.1", "3 values"),
        ("0 0.5 0.5 0.1 abc", "not a number"),
        ("0 0.1 0.1 0.2 0.2 0.3", "x, y pairs"),
        ("0 0.5 0.5 0.0 0.1", "zero width"),
        ("0 0.2 0.2 0.2 0.2 0.2 0.2", "all lie at"),
        ("0 0.1 0.1 0.2 0.2 0.3 0.3", "zero area"),
    ],
)
def test_bad_line_rejected_on_its_own(tmp_path: Path, line: str, fragment: str) -> None:
    make_dataset(tmp_path, {"a.png": f"{line}\n0 0.5 0.5 0.2 0.2\n"}, names=["scratch"])

    batch = read_yolo(tmp_path)
    image = batch.images[0]

    assert len(image.regions) == 1
    errors = [problem for problem in batch.problems if problem.severity == "error"]
    assert len(errors) == 1
    assert errors[0].line == 1
    assert fragment in errors[0].message


def test_all_lines_rejected_leaves_image_unlabeled(tmp_path: Path) -> None:
    make_dataset(tmp_path, {"a.png": "9 0.5 0.5 0.2 0.2\n"}, names=["scratch"])

    batch = read_yolo(tmp_path)

    assert not batch.images[0].labeled
    assert any("every line" in problem.message for problem in batch.problems)


def test_names_as_mapping_keep_ids(tmp_path: Path) -> None:
    make_dataset(tmp_path, {"a.png": "3 0.5 0.5 0.2 0.2\n"}, names={0: "scratch", 3: "dent"})

    batch = read_yolo(tmp_path)

    assert batch.classes == [ClassSpec("scratch", "0"), ClassSpec("dent", "3")]
    assert batch.images[0].regions[0].class_name == "dent"


def test_segmentation_polygon_line(tmp_path: Path) -> None:
    make_dataset(tmp_path, {"a.png": "0 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n"}, names=["crack"])

    region = read_yolo(tmp_path).images[0].regions[0]

    assert region.kind == "polygon"
    assert region.polygon == [0.1, 0.1, 0.5, 0.1, 0.5, 0.5, 0.1, 0.5]


def test_wrong_path_and_missing_split_folder_warn(tmp_path: Path) -> None:
    make_dataset(tmp_path, {"a.png": ""}, names=["crack"])
    (tmp_path / "data.yaml").write_text(
        yaml.safe_dump({"path": "Datasets", "train": "images/train", "val": "images/val", "names": ["crack"]})
    )

    batch = read_yolo(tmp_path)

    assert len(batch.images) == 1
    assert batch.images[0].split == "train"
    messages = [problem.message for problem in batch.problems]
    assert any("'Datasets' does not exist" in message for message in messages)
    assert any("'images/val' does not exist" in message for message in messages)
    assert all(problem.severity == "warning" for problem in batch.problems)


def test_label_file_without_image_is_reported(tmp_path: Path) -> None:
    make_dataset(tmp_path, {"a.png": ""}, names=["crack"])
    (tmp_path / "labels" / "train" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")

    batch = read_yolo(tmp_path)

    assert [problem.path for problem in batch.problems] == ["labels/train/ghost.txt"]


def test_p4_box_stays_normalized_to_displayed_image(tmp_path: Path) -> None:
    root = tmp_path / "in"
    (root / "data.yaml").parent.mkdir(parents=True)
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "images/train", "names": ["dent"]}))
    write_image(root / "images" / "train" / "rotated.jpg", 100, 40, exif_orientation=6)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "rotated.txt").write_text("0 0.5 0.25 0.5 0.1\n")

    export_set, problems = export_set_from_batch(read_yolo(root))
    image = export_set.images[0]
    write_dataset(export_set, tmp_path / "out", "yolo")

    assert problems == []
    assert (image.width, image.height) == (40, 100)
    assert image.regions[0].box == pytest.approx((10.0, 20.0, 30.0, 30.0))
    assert (tmp_path / "out" / "labels" / "train" / "rotated.txt").read_text() == "0 0.5 0.25 0.5 0.1\n"


def test_p6_unicode_and_space_names_kept(tmp_path: Path) -> None:
    names = ["Prüfung Daten/défaut_ø.png", "Prüfung Daten/划痕 01.jpg", "Prüfung Daten/scratch 2.png"]
    make_dataset(tmp_path / "in", {name: "0 0.5 0.5 0.2 0.2\n" for name in names}, names=["划痕"])

    batch = read_yolo(tmp_path / "in")
    export_set, _ = export_set_from_batch(batch)
    write_dataset(export_set, tmp_path / "out", "yolo")
    again = read_dataset(tmp_path / "out")

    expected = sorted(f"images/train/{name}" for name in names)
    assert sorted(image.path for image in batch.images) == expected
    assert sorted(image.path for image in again.images) == expected
    assert all(image.regions[0].class_name == "划痕" for image in again.images)


def test_p7_same_file_name_in_two_folders(tmp_path: Path) -> None:
    labels = {"lineA/0001.png": "0 0.5 0.5 0.2 0.2\n", "lineB/0001.png": "0 0.25 0.25 0.1 0.1\n0 0.7 0.7 0.1 0.1\n"}
    make_dataset(tmp_path / "in", labels, names=["scratch"])

    batch = read_yolo(tmp_path / "in")
    export_set, _ = export_set_from_batch(batch)
    problems = write_dataset(export_set, tmp_path / "out", "yolo")
    again = by_path(read_dataset(tmp_path / "out"))

    assert problems == []
    assert len(again) == 2
    assert len(again["images/train/lineA/0001.png"].regions) == 1
    assert len(again["images/train/lineB/0001.png"].regions) == 2


def test_writer_normalizes_by_displayed_size_and_keeps_splits(tmp_path: Path) -> None:
    source = tmp_path / "a.png"
    write_image(source, 200, 100)
    images = [
        ExportImage("a.png", source, 200, 100, split="dev", labeled=True, regions=[Region("box", "dent", box=(20, 10, 60, 50))]),
        ExportImage("b.png", source, 200, 100, split=None, labeled=True, label=OK_CLASS),
    ]

    write_dataset(ExportSet([ClassSpec("dent")], images), tmp_path / "out", "yolo")
    config = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())
    batch = by_path(read_dataset(tmp_path / "out"))

    assert (tmp_path / "out" / "labels" / "val" / "a.txt").read_text() == "0 0.2 0.3 0.2 0.4\n"
    assert config["names"] == {0: "dent"}
    assert config["task"] == "detect"
    assert batch["images/val/a.png"].split == "dev"
    assert batch["images/unassigned/b.png"].split is None


def test_masks_become_polygons_in_segmentation_export(tmp_path: Path) -> None:
    source = tmp_path / "a.png"
    write_image(source, 20, 10)
    mask = np.zeros((10, 20), dtype=bool)
    mask[2:6, 4:9] = True
    image = ExportImage("a.png", source, 20, 10, labeled=True, regions=[Region("mask", "dent", mask=mask)])
    export_set = ExportSet([ClassSpec("dent")], [image])

    losses = describe_losses(export_set, "yolo")
    write_dataset(export_set, tmp_path / "out", "yolo")
    region = read_dataset(tmp_path / "out").images[0].regions[0]

    assert any("outer contours" in loss for loss in losses)
    assert region.kind == "polygon"
    xs, ys = region.polygon[0::2], region.polygon[1::2]
    assert (min(xs) * 20, max(xs) * 20, min(ys) * 10, max(ys) * 10) == pytest.approx((4, 9, 2, 6))


def test_image_level_class_not_written_as_ok(tmp_path: Path) -> None:
    source = tmp_path / "a.png"
    write_image(source, 20, 10)
    image = ExportImage("a.png", source, 20, 10, labeled=True, label="dent")

    problems = write_dataset(ExportSet([ClassSpec("dent")], [image]), tmp_path / "out", "yolo")
    again = read_dataset(tmp_path / "out").images[0]

    assert len(problems) == 1
    assert not again.labeled


def test_val_repeating_train_reads_as_train(tmp_path: Path) -> None:
    make_dataset(tmp_path, {"a.png": ""}, names=["dent"])
    config = yaml.safe_load((tmp_path / "data.yaml").read_text())
    config["val"] = "images/train"
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(config))

    batch = read_dataset(tmp_path)

    assert batch.images[0].split == "train"


def test_writer_without_splits_reads_back_without_splits(tmp_path: Path) -> None:
    source = tmp_path / "a.png"
    write_image(source, 20, 10)
    images = [ExportImage("a.png", source, 20, 10, labeled=True, label=OK_CLASS)]

    write_dataset(ExportSet([ClassSpec("dent")], images), tmp_path / "out", "yolo")
    config = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())
    batch = read_dataset(tmp_path / "out")

    assert config["train"] == config["val"] == "images/unassigned"
    assert "test" not in config
    assert batch.images[0].split is None


def test_writer_without_dev_keeps_train(tmp_path: Path) -> None:
    source = tmp_path / "a.png"
    write_image(source, 20, 10)
    images = [
        ExportImage("a.png", source, 20, 10, split="train", labeled=True, label=OK_CLASS),
        ExportImage("b.png", source, 20, 10, split="test", labeled=True, label=OK_CLASS),
    ]

    write_dataset(ExportSet([ClassSpec("dent")], images), tmp_path / "out", "yolo")
    text = (tmp_path / "out" / "data.yaml").read_text()
    splits = {image.path: image.split for image in read_dataset(tmp_path / "out").images}

    assert "val repeats train" in text
    assert splits == {"images/train/a.png": "train", "images/test/b.png": "test"}
