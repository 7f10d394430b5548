"""Box detector: trained on generated parts, it finds their defects, and every path gives the same boxes."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from defectlab.data.regions import mask_to_png
from defectlab.errors import InvalidInputError, TrainingError
from defectlab.evaluation.boxes import box_iou
from defectlab.samples import draw_part
from defectlab.training.detection import (
    STRIDE,
    Detector,
    choose_input_size,
    choose_threshold,
    decode_boxes,
    non_max_suppression,
    regions_to_boxes,
    train_detector,
)

CLASSES = ["ok", "scratch", "spot"]
SIZE = 128


def parts(count: int, seed: int) -> tuple[list[np.ndarray], list[list[tuple[int, float, float, float, float]]]]:
    """Return generated parts (every third one good) and the box around each defect mask."""
    rng = np.random.default_rng(seed)
    images, boxes = [], []
    for index in range(count):
        label = index % 3
        pixels, mask = draw_part(rng, size=SIZE, defect=None if label == 0 else CLASSES[label])
        images.append(pixels)
        boxes.append([] if label == 0 else [(label, *mask_box(mask))])
    return images, boxes


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows, columns = np.nonzero(mask)
    return float(columns.min()), float(rows.min()), float(columns.max() + 1), float(rows.max() + 1)


@pytest.fixture(scope="module")
def trained() -> Detector:
    torch.manual_seed(0)
    images, boxes = parts(36, seed=1)
    return train_detector(images, boxes, CLASSES, epochs=40)


@pytest.fixture(scope="module")
def held_out() -> tuple[list[np.ndarray], list[list[tuple[int, float, float, float, float]]]]:
    return parts(15, seed=3)


def test_detector_finds_defect_boxes(trained, held_out) -> None:
    images, boxes = held_out
    predictions = trained.predict(images)
    defective = [index for index, listed in enumerate(boxes) if listed]
    hits = 0
    for index in defective:
        top = predictions[index][0]
        truth = boxes[index][0]
        iou = box_iou(np.array([top["box"]]), np.array([truth[1:]]))[0, 0]
        # 0.5 is the IoU at which AP50 counts a box as found; scratches are 3 px wide,
        # so one pixel off on a narrow side already costs a third of the IoU.
        hits += int(top["class"] == CLASSES[truth[0]] and iou >= 0.5)
    assert hits >= len(defective) - 1


def test_good_parts_score_below_defective_parts(trained, held_out) -> None:
    images, boxes = held_out
    scores = trained.image_scores(trained.predict(images))
    is_defective = np.array([bool(listed) for listed in boxes])
    assert scores[~is_defective].max() < scores[is_defective].min()


def test_predictions_sorted_and_within_min_score(trained, held_out) -> None:
    images, _ = held_out
    for boxes in trained.predict(images, min_score=0.01):
        scores = [box["score"] for box in boxes]
        assert scores == sorted(scores, reverse=True)
        assert all(score >= 0.01 for score in scores)
        assert set(box["class"] for box in boxes) <= {"scratch", "spot"}


@pytest.mark.parametrize("shape", [(101, 77), (130, 251), (97, 97, 3)])
def test_boxes_inside_odd_sized_images(trained, shape) -> None:
    rng = np.random.default_rng(5)
    pixels, _ = draw_part(rng, size=max(shape[:2]), defect="spot")
    pixels = pixels[: shape[0], : shape[1]]
    if len(shape) == 3:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    for box in trained.predict([pixels], min_score=0.001)[0]:
        x_min, y_min, x_max, y_max = box["box"]
        assert 0 <= x_min < x_max <= shape[1]
        assert 0 <= y_min < y_max <= shape[0]


def test_round_trip_gives_identical_boxes(trained, held_out) -> None:
    images, _ = held_out
    stream = io.BytesIO()
    torch.save(trained.to_dict(), stream)
    restored = Detector.from_dict(torch.load(io.BytesIO(stream.getvalue()), weights_only=True))
    assert restored.predict(images) == trained.predict(images)
    assert restored.class_names == trained.class_names
    assert restored.input_size == trained.input_size
    assert restored.threshold == trained.threshold


def test_foreign_dict_rejected(trained) -> None:
    data = trained.to_dict()
    data["format"] = "defectlab.classifier.patches"
    with pytest.raises(InvalidInputError, match="Detector.to_dict"):
        Detector.from_dict(data)


def test_onnx_graph_gives_same_boxes(trained, held_out, tmp_path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    from defectlab.models.preprocess import to_batch

    images, _ = held_out
    height, width = trained.input_size
    path = tmp_path / "detector.onnx"
    torch.onnx.export(trained.module(), (torch.zeros(1, 3, height, width),), str(path), dynamo=False,
                      opset_version=17, input_names=["images"], output_names=["heatmaps"],
                      dynamic_axes={"images": {0: "batch"}})
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (heatmaps,) = session.run(None, {"images": to_batch(images, trained.preprocessing).numpy()})
    with torch.inference_mode():
        expected = trained.module()(to_batch(images, trained.preprocessing)).numpy()
    assert np.abs(heatmaps - expected).max() < 1e-4

    predicted = trained.predict(images)
    for index, pixels in enumerate(images):
        decoded = trained.decode(heatmaps[index], pixels.shape[:2])
        assert [box["class"] for box in decoded] == [box["class"] for box in predicted[index]]
        assert np.allclose([box["box"] for box in decoded], [box["box"] for box in predicted[index]], atol=0.01)
        assert np.allclose([box["score"] for box in decoded], [box["score"] for box in predicted[index]], atol=1e-4)


def decode_one(heatmap: np.ndarray, *, image_size: tuple[int, int] = (64, 64), min_score: float = 0.05) -> list[dict]:
    """Decode a single-class heatmap ``(h, w)`` of a 64 x 64 input (8 x 8 cells)."""
    return decode_boxes(heatmap[None].astype(np.float32), class_names=["scratch"], input_size=(64, 64),
                        image_size=image_size, min_score=min_score)


def test_decode_box_from_region_with_shares() -> None:
    heatmap = np.zeros((8, 8))
    heatmap[2:4, 2:5] = 0.8
    # Row 1 scores a quarter of the peak and column 5 a fifth: both below REGION_SHARE
    # (0.3), so they stay out of the region but add their share of a cell.
    heatmap[1, 2:5] = 0.2
    heatmap[2:4, 5] = 0.16
    boxes = decode_one(heatmap)
    # x: cells 2 to 4 plus 0.2 cell, 16 to 41.6 px; y: cells 2 to 3 plus 0.25 cell, 14 to 32 px.
    assert len(boxes) == 1
    assert boxes[0]["box"] == pytest.approx([16.0, 14.0, 41.6, 32.0])
    assert boxes[0]["score"] == pytest.approx(0.8)


def test_decode_joins_across_one_cell_gap() -> None:
    heatmap = np.zeros((8, 8))
    heatmap[4, 1:3] = 0.9
    heatmap[4, 4:6] = 0.7
    boxes = decode_one(heatmap)
    # The last cell scores 0.7 / 0.9 of the peak, so the box ends that far into it.
    assert len(boxes) == 1
    assert boxes[0]["box"] == pytest.approx([8.0, 32.0, 8 * (5 + 0.7 / 0.9), 40.0])


def test_decode_splits_across_two_cell_gap() -> None:
    heatmap = np.zeros((8, 8))
    heatmap[4, 0:2] = 0.9
    heatmap[4, 4:6] = 0.7
    boxes = decode_one(heatmap)
    assert [box["score"] for box in boxes] == pytest.approx([0.9, 0.7])
    assert boxes[0]["box"] == pytest.approx([0.0, 32.0, 16.0, 40.0])
    assert boxes[1]["box"] == pytest.approx([32.0, 32.0, 48.0, 40.0])


def test_decode_keeps_overlapping_boxes_of_other_classes() -> None:
    heatmaps = np.zeros((2, 8, 8), dtype=np.float32)
    heatmaps[0, 3, 3] = 0.9
    heatmaps[1, 3, 3] = 0.6
    boxes = decode_boxes(heatmaps, class_names=["scratch", "spot"], input_size=(64, 64), image_size=(64, 64))
    assert [(box["class"], box["score"]) for box in boxes] == [("scratch", pytest.approx(0.9)),
                                                               ("spot", pytest.approx(0.6))]


def test_decode_scales_to_image() -> None:
    heatmap = np.zeros((8, 8))
    heatmap[0, 6:8] = 0.5
    # Cells 6 and 7 of row 0 span x 48 to 64 and y 0 to 8 input pixels, and the
    # image is twice as wide and half as high as the input.
    boxes = decode_one(heatmap, image_size=(32, 128))
    assert boxes == [{"class": "scratch", "box": pytest.approx([96.0, 0.0, 128.0, 4.0]), "score": pytest.approx(0.5)}]


def test_decode_ignores_scores_below_min_score() -> None:
    heatmap = np.zeros((8, 8))
    heatmap[2, 2] = 0.04
    assert decode_one(heatmap, min_score=0.05) == []


def test_non_max_suppression_removes_overlaps_only() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 4]])
    # Box 0 overlaps the higher-scoring box 1 by IoU 90 / 110 and is removed; box 3
    # overlaps box 1 by 36 / 104 and is kept.
    kept = non_max_suppression(boxes, np.array([0.9, 0.95, 0.5, 0.8]), iou_threshold=0.5)
    assert kept == [1, 3, 2]


def test_heatmaps_have_stride_grid(trained) -> None:
    height, width = trained.input_size
    with torch.inference_mode():
        heatmaps = trained.module()(torch.zeros(1, 3, height, width))
    assert heatmaps.shape == (1, 2, height // STRIDE, width // STRIDE)
    assert float(heatmaps.min()) >= 0.0
    assert float(heatmaps.max()) <= 1.0


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([(128, 128)], (128, 128)),
        ([(101, 77), (99, 80)], (96, 64)),
        ([(1260, 500), (1254, 500), (1270, 500)], (640, 256)),
        ([(4000, 4000)], (416, 416)),
    ],
)
def test_choose_input_size(sizes, expected) -> None:
    assert choose_input_size(sizes) == expected


def test_choose_threshold_lowers_threshold_to_remove_escape() -> None:
    # One defective image scores 0.2, below the default 0.5; the good images score at most 0.1.
    scores = np.array([0.9, 0.2, 0.05, 0.1, 0.0])
    is_defective = np.array([True, True, False, False, False])
    assert choose_threshold(scores, is_defective) == pytest.approx(0.15)


def test_choose_threshold_trades_escape_for_overkills() -> None:
    # Removing the escape at 0.3 costs two overkills (0.35, 0.4), fewer than one escape's 5.
    scores = np.array([0.9, 0.3, 0.35, 0.4, 0.1])
    is_defective = np.array([True, True, False, False, False])
    assert choose_threshold(scores, is_defective) == pytest.approx(0.2)
    assert choose_threshold(scores, is_defective, escape_cost=1.0) == pytest.approx(0.5)


def test_choose_threshold_keeps_default_when_it_separates() -> None:
    assert choose_threshold(np.array([0.9, 0.1]), np.array([True, False])) == pytest.approx(0.5)


def test_regions_to_boxes_turns_polygons_and_masks_into_boxes() -> None:
    mask = np.zeros((20, 30), dtype=bool)
    mask[2:5, 3:9] = True
    mask[10:12, 20:30] = True
    stored = {"abc": mask_to_png(mask)}
    regions = [
        {"kind": "polygon", "class": "scratch", "geometry": [5.0, 1.0, 9.5, 7.0, 2.0, 3.0], "mask_sha256": None},
        {"kind": "box", "class": "spot", "geometry": [1.0, 2.0, 3.0, 4.0], "mask_sha256": None},
        {"kind": "mask", "class": "spot", "geometry": None, "mask_sha256": "abc"},
        {"kind": "box", "class": "dent", "geometry": [1.0, 2.0, 3.0, 4.0], "mask_sha256": None},
    ]
    boxes = regions_to_boxes(regions, CLASSES, masks=stored.__getitem__)
    assert boxes == [(1, 2.0, 1.0, 9.5, 7.0), (2, 1.0, 2.0, 3.0, 4.0), (2, 3.0, 2.0, 9.0, 5.0),
                     (2, 20.0, 10.0, 30.0, 12.0)]


def test_regions_to_boxes_needs_mask_reader() -> None:
    with pytest.raises(InvalidInputError, match="mask reader"):
        regions_to_boxes([{"kind": "mask", "class": "spot", "geometry": None, "mask_sha256": "abc"}], CLASSES)


@pytest.mark.parametrize(
    ("boxes", "class_names", "error", "message"),
    [
        ([[(1, 0, 0, 5, 5)]], ["scratch", "ok"], InvalidInputError, "first must be 'ok'"),
        ([[(1, 0, 0, 5, 5)], []], CLASSES, InvalidInputError, "1 images but 2 box lists"),
        ([[(0, 0, 0, 5, 5)]], CLASSES, InvalidInputError, "class index 0"),
        ([[(3, 0, 0, 5, 5)]], CLASSES, InvalidInputError, "class index 3"),
        ([[(1, 70, 0, 80, 5)]], CLASSES, InvalidInputError, "no area inside"),
        ([[(1, 5, 5, 5, 9)]], CLASSES, InvalidInputError, "no area inside"),
        ([[]], CLASSES, TrainingError, "at least one image with a labeled box"),
    ],
)
def test_train_detector_rejects_invalid_input(boxes, class_names, error, message) -> None:
    image = np.zeros((64, 64), dtype=np.uint8)
    with pytest.raises(error, match=message):
        train_detector([image], boxes, class_names, epochs=1)
