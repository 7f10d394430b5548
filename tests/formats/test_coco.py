"""COCO reader and writer: category ids, RLE masks, degenerate shapes, declared sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.formats import ExportSet, export_set_from_batch, read_dataset, summarize_batch, write_dataset
from defectlab.formats.coco import read_coco
from defectlab.formats.records import OK_CLASS, ClassSpec, ExportImage, ImportBatch, Region
from defectlab.formats.rle import counts_to_string, encode_rle


def write_image(path: Path, width: int, height: int, *, exif_orientation: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.zeros((height, width), dtype=np.uint8))
    if exif_orientation is None:
        image.save(path)
        return
    exif = Image.Exif()
    exif[0x0112] = exif_orientation
    image.save(path, exif=exif)


def write_coco_file(path: Path, images: list[dict], annotations: list[dict], categories: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"images": images, "annotations": annotations, "categories": categories}
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")


def by_path(batch: ImportBatch) -> dict:
    return {image.path: image for image in batch.images}


def test_l2_category_id_zero_is_a_class(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", 50, 40)
    write_coco_file(
        tmp_path / "instances.json",
        [{"id": 1, "file_name": "a.png", "width": 50, "height": 40}],
        [{"id": 1, "image_id": 1, "category_id": 0, "bbox": [5, 5, 10, 10]}],
        [{"id": 0, "name": "scratch"}, {"id": 1, "name": "dent"}],
    )

    batch = read_coco(tmp_path)

    assert batch.classes == [ClassSpec("scratch", "0"), ClassSpec("dent", "1")]
    assert batch.images[0].regions[0].class_name == "scratch"
    assert batch.images[0].regions[0].box == (5.0, 5.0, 15.0, 15.0)
    assert batch.problems == []


def test_l2_sparse_ids_survive_export(tmp_path: Path) -> None:
    write_image(tmp_path / "in" / "a.png", 50, 40)
    annotations = [
        {"id": 10, "image_id": 1, "category_id": 7, "bbox": [1, 1, 5, 5]},
        {"id": 11, "image_id": 1, "category_id": 3, "bbox": [10, 10, 5, 5]},
        {"id": 12, "image_id": 1, "category_id": 1, "bbox": [20, 20, 5, 5]},
    ]
    categories = [{"id": 1, "name": "scratch"}, {"id": 3, "name": "dent"}, {"id": 7, "name": "stain"}]
    write_coco_file(tmp_path / "in" / "train.json", [{"id": 1, "file_name": "a.png", "width": 50, "height": 40}], annotations, categories)

    export_set, _ = export_set_from_batch(read_coco(tmp_path / "in"))
    write_dataset(export_set, tmp_path / "out", "coco")
    written = json.loads((tmp_path / "out" / "annotations.json").read_text())
    again = read_dataset(tmp_path / "out")

    assert {category["id"]: category["name"] for category in written["categories"]} == {1: "scratch", 3: "dent", 7: "stain"}
    names = {7: "stain", 3: "dent", 1: "scratch"}
    assert [names[annotation["category_id"]] for annotation in written["annotations"]] == ["stain", "dent", "scratch"]
    assert len(again.images[0].regions) == 3
    assert again.images[0].split == "train"


def test_unknown_category_rejected_with_ids_listed(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", 50, 40)
    write_coco_file(
        tmp_path / "c.json",
        [{"id": 1, "file_name": "a.png", "width": 50, "height": 40}],
        [
            {"id": 1, "image_id": 1, "category_id": 9, "bbox": [5, 5, 10, 10]},
            {"id": 2, "image_id": 1, "category_id": 0, "bbox": [5, 5, 10, 10]},
        ],
        [{"id": 0, "name": "scratch"}],
    )

    batch = read_coco(tmp_path)

    assert len(batch.images[0].regions) == 1
    assert len(batch.problems) == 1
    assert "category_id 9" in batch.problems[0].message
    assert batch.problems[0].path == "c.json"


def test_l3_both_rle_forms_decode_to_same_mask(tmp_path: Path) -> None:
    write_image(tmp_path / "tall.png", 5, 10)
    rle_list = {"counts": [0, 20, 30], "size": [10, 5]}
    rle_string = {"counts": counts_to_string([0, 20, 30]), "size": [10, 5]}
    write_coco_file(
        tmp_path / "c.json",
        [{"id": 1, "file_name": "tall.png", "width": 5, "height": 10}],
        [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": rle_list, "iscrowd": 1},
            {"id": 2, "image_id": 1, "category_id": 1, "segmentation": rle_string, "iscrowd": 1},
        ],
        [{"id": 1, "name": "stain"}],
    )

    regions = read_coco(tmp_path).images[0].regions

    assert [region.kind for region in regions] == ["mask", "mask"]
    assert np.array_equal(regions[0].mask, regions[1].mask)
    assert regions[0].mask[:, :2].all()
    assert not regions[0].mask[:, 2:].any()


def test_l3_bad_rle_and_polygon_rejected(tmp_path: Path) -> None:
    write_image(tmp_path / "tall.png", 5, 10)
    write_coco_file(
        tmp_path / "c.json",
        [{"id": 1, "file_name": "tall.png", "width": 5, "height": 10}],
        [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": {"counts": [0, 20, 29], "size": [10, 5]}},
            {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 4, 1, 4, 8, 1]]},
            {"id": 3, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 4, 1, 4, 8]]},
        ],
        [{"id": 1, "name": "stain"}],
    )

    batch = read_coco(tmp_path)

    assert [region.kind for region in batch.images[0].regions] == ["polygon"]
    messages = [problem.message for problem in batch.problems]
    assert len(messages) == 2
    assert "annotation id 1" in messages[0]
    assert "add up to" in messages[0]
    assert "annotation id 2" in messages[1]
    assert "odd number" in messages[1]


def test_l4_degenerate_shapes_flagged_and_counted(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", 20, 20)
    island = np.zeros((20, 20), dtype=bool)
    island[3:8, 3:8] = True
    island[15, 15] = True

    write_coco_file(
        tmp_path / "c.json",
        [{"id": 1, "file_name": "a.png", "width": 20, "height": 20}],
        [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[5, 5, 5, 5, 5, 5]]},
            {"id": 2, "image_id": 1, "category_id": 1, "segmentation": encode_rle(island)},
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [4, 4, 0, 6]},
            {"id": 4, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 3]},
        ],
        [{"id": 1, "name": "pit"}],
    )

    batch = read_coco(tmp_path)
    summary = summarize_batch(batch)

    assert [region.kind for region in batch.images[0].regions] == ["mask", "box"]
    assert summary.regions_per_kind == {"mask": 1, "box": 1}
    assert len(summary.errors) == 2
    assert len(summary.warnings) == 1
    assert "all lie at" in summary.errors[0].message
    assert "zero width" in summary.errors[1].message
    assert "one-pixel island" in summary.warnings[0].message


def test_unannotated_ok_unlisted_unlabeled(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", 10, 10)
    write_image(tmp_path / "b.png", 10, 10)
    write_coco_file(tmp_path / "c.json", [{"id": 1, "file_name": "a.png", "width": 10, "height": 10}], [], [])

    batch = read_coco(tmp_path)
    images = by_path(batch)

    assert images["a.png"].label == OK_CLASS
    assert images["a.png"].labeled
    assert not images["b.png"].labeled
    assert [problem.path for problem in batch.problems] == ["b.png"]


def test_missing_image_file_is_an_error(tmp_path: Path) -> None:
    write_coco_file(tmp_path / "c.json", [{"id": 1, "file_name": "gone.png", "width": 10, "height": 10}], [], [])

    batch = read_coco(tmp_path)

    assert batch.images == []
    assert "gone.png" in batch.problems[0].message


def test_p4_declared_size_kept_and_written_as_displayed(tmp_path: Path) -> None:
    write_image(tmp_path / "in" / "images" / "rotated.jpg", 100, 40, exif_orientation=6)
    write_coco_file(
        tmp_path / "in" / "annotations.json",
        [{"id": 1, "file_name": "rotated.jpg", "width": 40, "height": 100}],
        [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 20, 10]}],
        [{"id": 1, "name": "dent"}],
    )

    batch = read_coco(tmp_path / "in")
    export_set, problems = export_set_from_batch(batch)
    write_dataset(export_set, tmp_path / "out", "coco")
    written = json.loads((tmp_path / "out" / "annotations.json").read_text())

    assert batch.images[0].declared_size == (40, 100)
    assert problems == []
    assert (written["images"][0]["width"], written["images"][0]["height"]) == (40, 100)
    assert written["annotations"][0]["bbox"] == [10.0, 20.0, 20.0, 10.0]


def test_p4_contradicting_declared_size_is_reported(tmp_path: Path) -> None:
    write_image(tmp_path / "rotated.jpg", 100, 40, exif_orientation=6)
    write_coco_file(tmp_path / "c.json", [{"id": 1, "file_name": "rotated.jpg", "width": 100, "height": 40}], [], [])

    _, problems = export_set_from_batch(read_coco(tmp_path))

    assert len(problems) == 1
    assert "declares 100x40" in problems[0].message


def test_p7_same_name_in_two_folders_round_trip(tmp_path: Path) -> None:
    for folder in ("lineA", "lineB"):
        write_image(tmp_path / "in" / folder / "0001.png", 30, 30)
    write_coco_file(
        tmp_path / "in" / "c.json",
        [
            {"id": 1, "file_name": "lineA/0001.png", "width": 30, "height": 30},
            {"id": 2, "file_name": "lineB/0001.png", "width": 30, "height": 30},
        ],
        [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [2, 2, 5, 5]},
            {"id": 3, "image_id": 2, "category_id": 1, "segmentation": [[10, 10, 20, 10, 20, 20]]},
        ],
        [{"id": 1, "name": "scratch"}],
    )

    export_set, _ = export_set_from_batch(read_coco(tmp_path / "in"))
    problems = write_dataset(export_set, tmp_path / "out", "coco")
    again = by_path(read_dataset(tmp_path / "out"))

    assert problems == []
    assert sorted(again) == ["lineA/0001.png", "lineB/0001.png"]
    assert len(again["lineA/0001.png"].regions) == 1
    assert [region.kind for region in again["lineB/0001.png"].regions] == ["box", "polygon"]


def test_writer_keeps_masks_metadata_and_unlabeled_images(tmp_path: Path) -> None:
    source = tmp_path / "a.png"
    write_image(source, 8, 6)
    mask = np.zeros((6, 8), dtype=bool)
    mask[1:4, 2:5] = True
    images = [
        ExportImage("m.png", source, 8, 6, split="test", labeled=True, metadata={"station": "3"},
                    regions=[Region("mask", "stain", mask=mask)]),
        ExportImage("u.png", source, 8, 6),
    ]

    write_dataset(ExportSet([ClassSpec("stain")], images), tmp_path / "out", "coco")
    again = by_path(read_dataset(tmp_path / "out"))

    assert np.array_equal(again["m.png"].regions[0].mask, mask)
    assert again["m.png"].metadata == {"station": "3"}
    assert again["m.png"].split == "test"
    assert not again["u.png"].labeled
