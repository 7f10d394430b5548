"""Image-plus-mask reader and writer, and the mask value rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.formats import ExportSet, describe_losses, read_dataset, write_dataset
from defectlab.formats._problems import ProblemLog
from defectlab.formats.masks import find_mask_pairs, read_masks
from defectlab.formats.masks_values import analyze_mask, read_mask_file, resize_mask
from defectlab.formats.records import OK_CLASS, ClassSpec, ExportImage, ImportBatch, Region


def write_array(path: Path, pixels: np.ndarray, **options: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **options)


def square_mask(value: int, size: int = 64) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[20:30, 20:30] = value
    return mask


def by_path(batch: ImportBatch) -> dict:
    return {image.path: image for image in batch.images}


@pytest.mark.parametrize("value", [255, 1, 240])
def test_l6_binary_mask_values_give_same_area(tmp_path: Path, value: int) -> None:
    write_array(tmp_path / "m.png", square_mask(value))
    log = ProblemLog()

    reading = read_mask_file(tmp_path / "m.png", log.at("m.png"))

    assert reading is not None
    assert reading.kind == "binary"
    assert reading.values == (0, value)
    assert int(reading.layers[1].sum()) == 100
    assert log.problems == []


def test_l6_values_found_are_reported_once(tmp_path: Path) -> None:
    for name, value in (("a", 255), ("b", 1), ("c", 240)):
        write_array(tmp_path / "images" / f"{name}.png", np.zeros((64, 64), dtype=np.uint8))
        write_array(tmp_path / "masks" / f"{name}.png", square_mask(value))

    batch = read_masks(tmp_path)

    assert all(int(image.regions[0].mask.sum()) == 100 for image in batch.images)
    assert len(batch.problems) == 1
    message = batch.problems[0].message
    assert "{0, 255} in 1 mask" in message
    assert "{0, 1} in 1 mask" in message
    assert "{0, 240} in 1 mask" in message


def test_l7_jpeg_binary_mask_thresholded_and_reported(tmp_path: Path) -> None:
    write_array(tmp_path / "m.jpg", square_mask(255), quality=75)
    log = ProblemLog()

    reading = read_mask_file(tmp_path / "m.jpg", log.at("m.jpg"))

    assert reading is not None
    assert reading.lossy
    assert reading.kind == "binary"
    assert int(reading.layers[1].sum()) == 100
    assert len(log.problems) == 1
    assert "JPEG" in log.problems[0].message


def test_l7_jpeg_index_mask_snapped_without_phantom_class(tmp_path: Path) -> None:
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[10:30, 10:30] = 1
    mask[35:55, 35:60] = 2
    write_array(tmp_path / "m.jpg", mask, quality=75)
    log = ProblemLog()

    reading = read_mask_file(tmp_path / "m.jpg", log.at("m.jpg"))

    assert reading is not None
    assert reading.kind == "index"
    assert sorted(reading.layers) == [1, 2]
    assert reading.layers[2][40, 45]
    assert reading.layers[1][20, 20]
    assert len(log.problems) == 1
    assert "snapped" in log.problems[0].message


def test_l7_class_list_bounds_index_values(tmp_path: Path) -> None:
    pixels = np.zeros((8, 8), dtype=np.uint8)
    pixels[0, 0:3] = [1, 2, 3]
    log = ProblemLog()

    reading = analyze_mask(pixels, log.at("m.png"), lossy=True, class_count=2)

    assert sorted(reading.layers) == [1, 2]
    assert reading.layers[2][0, 2]


def test_resize_mask_uses_nearest_neighbour() -> None:
    mask = np.array([[0, 7], [7, 0]], dtype=np.uint8)

    resized = resize_mask(mask, 4, 4)

    assert set(np.unique(resized).tolist()) == {0, 7}
    assert resized.tolist() == [[0, 0, 7, 7], [0, 0, 7, 7], [7, 7, 0, 0], [7, 7, 0, 0]]


def test_class_folders_with_masks_beside_images(tmp_path: Path) -> None:
    image = np.full((16, 16), 90, dtype=np.uint8)
    for folder in ("MT_Crack", "MT_Free"):
        write_array(tmp_path / folder / "Imgs" / "exp1.jpg", image)
    write_array(tmp_path / "MT_Free" / "Imgs" / "exp1.png", np.zeros((16, 16), dtype=np.uint8))
    crack = np.zeros((16, 16), dtype=np.uint8)
    crack[4:9, 4:9] = 255
    write_array(tmp_path / "MT_Crack" / "Imgs" / "exp1.png", crack)

    batch = read_masks(tmp_path)
    images = by_path(batch)

    assert {spec.name: spec.external_id for spec in batch.classes} == {"Crack": "MT_Crack", OK_CLASS: "MT_Free"}
    assert images["MT_Free/Imgs/exp1.jpg"].label == OK_CLASS
    assert images["MT_Free/Imgs/exp1.jpg"].regions == []
    assert images["MT_Crack/Imgs/exp1.jpg"].regions[0].class_name == "Crack"
    assert int(images["MT_Crack/Imgs/exp1.jpg"].regions[0].mask.sum()) == 25
    assert batch.problems == []


def test_defect_image_without_mask_warns(tmp_path: Path) -> None:
    write_array(tmp_path / "good" / "a.jpg", np.zeros((8, 8), dtype=np.uint8))
    write_array(tmp_path / "good" / "a.png", np.zeros((8, 8), dtype=np.uint8))
    write_array(tmp_path / "dent" / "b.jpg", np.zeros((8, 8), dtype=np.uint8))

    batch = read_masks(tmp_path)
    images = by_path(batch)

    assert images["dent/b.jpg"].label == "dent"
    assert images["dent/b.jpg"].labeled
    assert [problem.path for problem in batch.problems] == ["dent/b.jpg"]
    assert "no mask" in batch.problems[0].message


@pytest.mark.parametrize(
    ("image_rel", "mask_rel"),
    [
        ("scan.png", "scan_mask.png"),
        ("scan.png", "scan-mask.png"),
        ("images/a/scan.png", "masks/a/scan.png"),
        ("a/scan.png", "ground_truth/a/scan.png"),
        ("a/scan.bmp", "gt/a/scan_mask.png"),
    ],
)
def test_mask_pairing_layouts(tmp_path: Path, image_rel: str, mask_rel: str) -> None:
    write_array(tmp_path / image_rel, np.zeros((8, 8), dtype=np.uint8))
    write_array(tmp_path / mask_rel, np.zeros((8, 8), dtype=np.uint8))

    pairs = find_mask_pairs(tmp_path)

    assert [rel for _, rel in pairs.images] == [image_rel]
    assert pairs.masks == {image_rel: mask_rel}


def test_empty_mask_means_ok_and_missing_mask_unlabeled(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        write_array(tmp_path / "images" / f"{name}.png", np.zeros((8, 8), dtype=np.uint8))
    write_array(tmp_path / "masks" / "a.png", np.zeros((8, 8), dtype=np.uint8))
    dent = np.zeros((8, 8), dtype=np.uint8)
    dent[2:4, 2:4] = 255
    write_array(tmp_path / "masks" / "b.png", dent)

    images = by_path(read_masks(tmp_path))

    assert images["images/a.png"].label == OK_CLASS
    assert images["images/b.png"].regions[0].class_name == "defect"
    assert images["images/b.png"].labeled
    assert not images["images/c.png"].labeled


def test_broken_mask_and_orphan_mask_reported(tmp_path: Path) -> None:
    write_array(tmp_path / "images" / "a.png", np.zeros((8, 8), dtype=np.uint8))
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    write_array(tmp_path / "masks" / "zzz.png", np.zeros((8, 8), dtype=np.uint8))

    batch = read_masks(tmp_path)

    assert not batch.images[0].labeled
    assert [(problem.path, problem.severity) for problem in batch.problems] == [
        ("masks/a.png", "error"),
        ("masks/zzz.png", "warning"),
    ]


def test_index_masks_named_by_class_list(tmp_path: Path) -> None:
    write_array(tmp_path / "images" / "a.png", np.zeros((8, 8), dtype=np.uint8))
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[0:2, 0:2] = 1
    mask[5:7, 5:7] = 2
    write_array(tmp_path / "masks" / "a.png", mask)
    (tmp_path / "classes.txt").write_text("scratch\ndent\n", encoding="utf-8")

    batch = read_masks(tmp_path)

    assert [(region.class_name, int(region.mask.sum())) for region in batch.images[0].regions] == [
        ("scratch", 4),
        ("dent", 4),
    ]
    assert [spec.name for spec in batch.classes] == ["scratch", "dent"]


def test_writer_round_trip_with_boxes_rasterized(tmp_path: Path) -> None:
    source = tmp_path / "src.png"
    write_array(source, np.zeros((10, 12), dtype=np.uint8))
    mask = np.zeros((10, 12), dtype=bool)
    mask[1:3, 1:3] = True
    images = [
        ExportImage("lineA/0001.png", source, 12, 10, labeled=True,
                    regions=[Region("mask", "stain", mask=mask), Region("box", "dent", box=(6, 5, 10, 9))]),
        ExportImage("lineB/0001.png", source, 12, 10, labeled=True, label=OK_CLASS),
        ExportImage("lineB/0002.png", source, 12, 10),
    ]
    export_set = ExportSet([ClassSpec("stain"), ClassSpec("dent")], images)

    losses = describe_losses(export_set, "masks")
    problems = write_dataset(export_set, tmp_path / "out", "masks")
    again = by_path(read_dataset(tmp_path / "out"))

    assert any("become mask pixels" in loss for loss in losses)
    assert problems == []
    regions = {region.class_name: int(region.mask.sum()) for region in again["lineA/0001.png"].regions}
    assert regions == {"stain": 4, "dent": 16}
    assert again["lineB/0001.png"].label == OK_CLASS
    assert not again["lineB/0002.png"].labeled


def test_losses_only_when_regions_merge(tmp_path: Path) -> None:
    source = tmp_path / "src.png"
    write_array(source, np.zeros((10, 12), dtype=np.uint8))
    left = np.zeros((10, 12), dtype=bool)
    left[1:3, 1:3] = True
    right = np.zeros((10, 12), dtype=bool)
    right[1:3, 6:9] = True
    apart = ExportImage("a.png", source, 12, 10, labeled=True,
                        regions=[Region("mask", "stain", mask=left), Region("mask", "dent", mask=right)])
    same_class = ExportImage("b.png", source, 12, 10, labeled=True,
                             regions=[Region("mask", "dent", mask=left), Region("mask", "dent", mask=right)])
    overlapping = ExportImage("c.png", source, 12, 10, labeled=True,
                              regions=[Region("mask", "stain", mask=left), Region("mask", "dent", mask=left)])
    classes = [ClassSpec("stain"), ClassSpec("dent")]

    assert describe_losses(ExportSet(classes, [apart]), "masks") == []
    assert len(describe_losses(ExportSet(classes, [apart, same_class, overlapping]), "masks")) == 1
    assert "2 image(s)" in describe_losses(ExportSet(classes, [apart, same_class, overlapping]), "masks")[0]
