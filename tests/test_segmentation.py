"""Segmentation model: defects found at the right pixels, any image size, saved and exported exactly."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from defectlab.errors import InvalidInputError, TrainingError
from defectlab.evaluation.masks import IGNORE_INDEX, evaluate_masks, to_class_map
from defectlab.models.preprocess import to_batch
from defectlab.samples import draw_part
from defectlab.training.segmentation import Segmenter, _choose_epochs, _dilate, choose_input_size, train_segmenter

CLASSES = ["ok", "scratch", "spot"]
SIZE = 96


def dataset(count: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return ``count`` generated parts, cycling good, scratch and spot, with class-index masks."""
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for index in range(count):
        label = index % 3
        pixels, defect = draw_part(rng, size=SIZE, defect=None if label == 0 else CLASSES[label])
        images.append(pixels)
        masks.append((defect * label).astype(np.uint8))
    return images, masks


@pytest.fixture(scope="module")
def trained() -> tuple[Segmenter, list[np.ndarray], list[np.ndarray]]:
    images, masks = dataset(24, seed=1)
    model = train_segmenter(images, masks, CLASSES, seed=0)
    test_images, test_masks = dataset(12, seed=2)
    return model, test_images, test_masks


def test_predicted_masks_overlap_defects(trained) -> None:
    model, images, masks = trained

    probabilities = model.predict(images)
    evaluation = evaluate_masks(masks, [to_class_map(plane) for plane in probabilities], CLASSES)

    # A scratch is 3 px wide, so a prediction one pixel too wide on each side
    # already has IoU 3/5; spots are discs of radius 4 to 8 px.
    assert evaluation.iou[1] > IOU_SCRATCH
    assert evaluation.iou[2] > IOU_SPOT


IOU_SCRATCH = 0.3
IOU_SPOT = 0.5


def test_probabilities_sum_to_one(trained) -> None:
    model, images, _ = trained

    for plane in model.predict(images[:3]):
        assert plane.dtype == np.float32
        assert np.allclose(plane.sum(axis=0), 1.0, atol=1e-5)
        assert plane.min() >= 0.0


@pytest.mark.parametrize(
    "pixels",
    [
        np.full((97, 61), 120, dtype=np.uint8),
        np.full((33, 150, 3), 90, dtype=np.uint8),
        np.full((70, 45), 30_000, dtype=np.uint16),
    ],
    ids=["odd-gray", "rgb", "16-bit"],
)
def test_prediction_has_image_size(trained, pixels) -> None:
    model, _, _ = trained

    (plane,) = model.predict([pixels])

    assert plane.shape == (3, *pixels.shape[:2])
    assert np.allclose(plane.sum(axis=0), 1.0, atol=1e-5)


def test_round_trip_gives_identical_probabilities(trained) -> None:
    model, images, _ = trained
    stream = io.BytesIO()
    torch.save(model.to_dict(), stream)
    stream.seek(0)

    restored = Segmenter.from_dict(torch.load(stream, weights_only=True))

    for before, after in zip(model.predict(images[:4]), restored.predict(images[:4])):
        assert np.array_equal(before, after)
    assert restored.class_names == CLASSES
    assert restored.input_size == model.input_size


def test_exported_module_matches_predict(trained, tmp_path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    model, images, _ = trained
    assert images[0].shape == model.input_size
    batch = to_batch(images[:1], model.preprocessing)
    path = tmp_path / "segmenter.onnx"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.module(), (batch,), str(path), dynamo=False, opset_version=17,
                          input_names=["images"], output_names=["probabilities"])
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (exported,) = session.run(None, {"images": batch.numpy()})

    assert exported.shape == (1, 3, *model.input_size)
    assert np.abs(exported[0] - model.predict(images[:1])[0]).max() < 1e-4


def test_ignored_pixels_train_nothing() -> None:
    images, masks = dataset(6, seed=3)
    masks[1][:] = IGNORE_INDEX

    model = train_segmenter(images, masks, CLASSES, epochs=1)

    assert len(model.loss_history) == 1


def test_input_size_follows_median_image() -> None:
    assert choose_input_size([(500, 1250), (510, 1240), (490, 1270)]) == (512, 1280)
    assert choose_input_size([(96, 96)]) == (96, 96)
    assert choose_input_size([(20, 20)]) == (64, 64)


def test_input_size_of_large_images_is_capped() -> None:
    height, width = choose_input_size([(4000, 3000)])

    assert height * width <= 1280 * 512
    assert height % 32 == 0 and width % 32 == 0
    assert height > width


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda images, masks: (images, masks[:-1], CLASSES, {}), InvalidInputError, "masks"),
        (lambda images, masks: (images, [mask[:-1] for mask in masks], CLASSES, {}), InvalidInputError, "shape"),
        (lambda images, masks: (images, [mask + 3 for mask in masks], CLASSES, {}), InvalidInputError, "class values"),
        (lambda images, masks: (images, masks, ["scratch", "ok", "spot"], {}), InvalidInputError, "'ok'"),
        (lambda images, masks: (images, masks, CLASSES, {"input_size": (100, 96)}), InvalidInputError, "multiple of 32"),
        (lambda images, masks: (images, masks, CLASSES, {"epochs": 0}), InvalidInputError, "epochs"),
        (lambda images, masks: ([], [], CLASSES, {}), InvalidInputError, "no training image"),
        (lambda images, masks: (images, [mask * 0 for mask in masks], CLASSES, {}), TrainingError, "no defect pixel"),
    ],
    ids=["count", "shape", "values", "ok-first", "input-size", "epochs", "empty", "no-defects"],
)
def test_train_segmenter_rejects_invalid_input(change, error, message) -> None:
    images, masks = dataset(3, seed=4)
    images, masks, names, options = change(images, masks)

    with pytest.raises(error, match=message):
        train_segmenter(images, masks, names, **options)


def test_foreign_dict_rejected() -> None:
    with pytest.raises(InvalidInputError, match="Segmenter.to_dict"):
        Segmenter.from_dict({"format": "something-else", "version": 1})


def test_dilate_matches_square_maximum_filter() -> None:
    plane = torch.zeros(40, 30, dtype=torch.bool)
    plane[5, 7] = True
    plane[39, 29] = True
    plane[20, 0] = True

    expected = F.max_pool2d(plane[None, None].float(), 9, 1, 4)[0, 0] > 0

    assert torch.equal(_dilate(plane, 4), expected)


@pytest.mark.parametrize(("images", "epochs"), [
    (16, 40),  # 2 steps an epoch: 500 steps would take 250 epochs, capped at 40
    (100, 39),  # 13 steps an epoch: ceil(500 / 13)
    (208, 20),  # 26 steps an epoch: ceil(500 / 26) is 20
    (628, 20),  # 79 steps an epoch: 500 steps take 7 epochs, raised to 20 (1,580 steps)
    (1000, 16),  # 125 steps an epoch: 20 epochs would be 2,500 steps, so 2,000 // 125
    (5000, 8),  # 625 steps an epoch: 2,000 // 625 is 3, raised to 8
])
def test_epochs_follow_image_count(images: int, epochs: int) -> None:
    assert _choose_epochs(images) == epochs
