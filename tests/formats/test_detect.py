"""Format detection from the files of a dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.errors import InvalidInputError, NotFoundError
from defectlab.formats import FORMATS, detect_format, read_dataset


def write_png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(path)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def make_yolo(root: Path) -> None:
    write_png(root / "images" / "train" / "a.png")
    write_text(root / "labels" / "train" / "a.txt", "")
    write_text(root / "data.yaml", "names: [dent]\ntrain: images/train\n")


def make_yolo_without_config(root: Path) -> None:
    write_png(root / "images" / "a.png")
    write_text(root / "labels" / "a.txt", "0 0.5 0.5 0.1 0.1\n")


def make_coco(root: Path) -> None:
    write_png(root / "images" / "a.png")
    document = {"images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}], "annotations": [], "categories": []}
    write_text(root / "annotations" / "instances_val.json", json.dumps(document))


def make_voc(root: Path) -> None:
    write_png(root / "JPEGImages" / "a.png")
    write_text(root / "Annotations" / "a.xml", "<annotation><filename>a.png</filename></annotation>")


def make_labelimg(root: Path) -> None:
    write_png(root / "a.png")
    write_text(root / "a.xml", "<annotation><filename>a.png</filename></annotation>")


def make_mvtec(root: Path) -> None:
    write_png(root / "bottle" / "train" / "good" / "000.png")
    write_png(root / "bottle" / "test" / "good" / "000.png")


def make_masks(root: Path) -> None:
    write_png(root / "images" / "a.png")
    write_png(root / "masks" / "a.png")


def make_class_folder_masks(root: Path) -> None:
    write_png(root / "MT_Free" / "Imgs" / "a.jpg")
    write_png(root / "MT_Free" / "Imgs" / "a.png")


def make_folders(root: Path) -> None:
    write_png(root / "good" / "a.png")
    write_png(root / "scratch" / "b.png")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (make_yolo, "yolo"),
        (make_yolo_without_config, "yolo"),
        (make_coco, "coco"),
        (make_voc, "voc"),
        (make_labelimg, "voc"),
        (make_mvtec, "mvtec"),
        (make_masks, "masks"),
        (make_class_folder_masks, "masks"),
        (make_folders, "folders"),
    ],
)
def test_layout_detected_and_readable(tmp_path: Path, make: object, expected: str) -> None:
    make(tmp_path)  # type: ignore[operator]

    detected = detect_format(tmp_path)
    batch = read_dataset(tmp_path)

    assert detected == expected
    assert expected in FORMATS
    assert batch.format == expected
    assert len(batch.images) >= 1


def test_coco_and_yaml_files_detected_directly(tmp_path: Path) -> None:
    make_coco(tmp_path / "coco")
    make_yolo(tmp_path / "yolo")

    assert detect_format(tmp_path / "coco" / "annotations" / "instances_val.json") == "coco"
    assert detect_format(tmp_path / "yolo" / "data.yaml") == "yolo"


def test_unknown_layout_lists_what_was_looked_for(tmp_path: Path) -> None:
    write_text(tmp_path / "notes.txt", "hello")

    with pytest.raises(InvalidInputError, match="no dataset format recognized"):
        detect_format(tmp_path)


def test_missing_path_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        read_dataset(tmp_path / "nowhere")


def test_unknown_format_name_is_rejected(tmp_path: Path) -> None:
    make_folders(tmp_path)

    with pytest.raises(InvalidInputError, match="unknown dataset format"):
        read_dataset(tmp_path, "labelme")


@pytest.mark.parametrize(
    ("make", "given", "expected", "detected"),
    [
        (make_voc, "coco", "no COCO JSON file", "voc"),
        (make_voc, "yolo", "no YOLO data.yaml", "voc"),
        (make_voc, "folders", "contains voc labels", "voc"),
        (make_voc, "native", "no defectlab.json", "voc"),
        (make_coco, "voc", "no VOC XML files", "coco"),
        (make_folders, "mvtec", "no MVTec object folder", "folders"),
        (make_folders, "masks", "no image with a mask", "folders"),
        (make_masks, "folders", "contains masks labels", "masks"),
    ],
)
def test_wrong_format_names_expected_and_detected(
    tmp_path: Path, make: object, given: str, expected: str, detected: str
) -> None:
    make(tmp_path)  # type: ignore[operator]

    with pytest.raises(InvalidInputError) as raised:
        read_dataset(tmp_path, given)

    message = str(raised.value)
    assert str(tmp_path) in message
    assert expected in message
    assert f"--format {detected}" in message
    assert "omit --format" in message


def test_wrong_format_without_any_layout_says_check_path(tmp_path: Path) -> None:
    write_text(tmp_path / "notes.txt", "hello")

    with pytest.raises(InvalidInputError, match="check the path, or omit --format"):
        read_dataset(tmp_path, "coco")


def test_flat_yolo_folder_read_when_named(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png")
    write_text(tmp_path / "a.txt", "0 0.5 0.5 0.5 0.5\n")

    batch = read_dataset(tmp_path, "yolo")

    assert batch.images[0].regions[0].kind == "box"


def test_same_stem_images_are_not_a_mask_pair(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(880, 920, size=(32, 32)).astype(np.uint16)
    (tmp_path / "good").mkdir()
    Image.fromarray(noise).save(tmp_path / "good" / "gray16.png")
    Image.fromarray(noise).save(tmp_path / "good" / "gray16.tif")
    write_png(tmp_path / "scratch" / "b.png")

    batch = read_dataset(tmp_path)

    assert batch.format == "folders"
    assert sorted(image.path for image in batch.images) == ["good/gray16.png", "good/gray16.tif", "scratch/b.png"]
