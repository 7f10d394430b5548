"""The label search of segmentation and detection projects finds planted label errors and names their problem."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from defectlab.data.importer import import_path
from defectlab.errors import InvalidInputError
from defectlab.quality.box_labels import (
    ScoreScale,
    choose_sure_score,
    score_box_labels,
    to_cleanlab_boxes,
)
from defectlab.quality.check import check_project
from defectlab.quality.mask_labels import choose_fold_input_size, choose_grid, grid_labels, score_mask_labels
from defectlab.quality.region_labels import assign_folds, find_suspicious_regions
from defectlab.workspace import Workspace

SIZE = 64
SIDE = 14
BRIGHT, DARK = 235, 10


def draw(rng: np.random.Generator, shade: int | None) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Return a noisy gray 64 x 64 image with a square of ``shade`` (none when None) and the square's corner."""
    pixels = np.clip(rng.normal(110, 12, (SIZE, SIZE)), 0, 255).astype(np.uint8)
    if shade is None:
        return pixels, None
    x, y = (int(value) for value in rng.integers(2, SIZE - SIDE - 2, size=2))
    pixels[y:y + SIDE, x:x + SIDE] = shade
    return pixels, (x, y)


def yolo_box(class_id: int, corner: tuple[int, int], shift: tuple[int, int] = (0, 0)) -> str:
    x, y = corner[0] + shift[0], corner[1] + shift[1]
    centre_x, centre_y = (x + SIDE / 2) / SIZE, (y + SIDE / 2) / SIZE
    return f"{class_id} {centre_x:.6f} {centre_y:.6f} {SIDE / SIZE:.6f} {SIDE / SIZE:.6f}\n"


def yolo_square(class_id: int, corner: tuple[int, int]) -> str:
    x0, y0 = corner[0] / SIZE, corner[1] / SIZE
    x1, y1 = (corner[0] + SIDE) / SIZE, (corner[1] + SIDE) / SIZE
    return f"{class_id} {x0:.6f} {y0:.6f} {x1:.6f} {y0:.6f} {x1:.6f} {y1:.6f} {x0:.6f} {y1:.6f}\n"


def write_dataset(folder: Path, shades: list[int | None], names: list[str], label_line) -> dict[int, tuple]:  # noqa: ANN001
    """Write a YOLO dataset; ``label_line(index, corner)`` returns an image's label text. Return the corners."""
    rng = np.random.default_rng(7)
    (folder / "images" / "train").mkdir(parents=True)
    (folder / "labels" / "train").mkdir(parents=True)
    (folder / "data.yaml").write_text(yaml.safe_dump({"train": "images/train", "names": names}))
    corners = {}
    for index, shade in enumerate(shades):
        pixels, corner = draw(rng, shade)
        corners[index] = corner
        Image.fromarray(pixels).save(folder / "images" / "train" / f"{index:02d}.png")
        (folder / "labels" / "train" / f"{index:02d}.txt").write_text(label_line(index, corner))
    return corners


# 12 good images, 16 with a bright square (spot) and 16 with a dark one (hole). The label errors are
# planted on spot images 12, 13 and 14 and hole image 28, one in 16 images of a class or fewer.
SHADES = [None] * 12 + [BRIGHT] * 16 + [DARK] * 16
HOLE, SPOT = 0, 1
MISSING, SWAPPED, SHIFTED_HALF, SHIFTED_FAR = 12, 13, 14, 28


def detection_label(index: int, corner: tuple[int, int] | None) -> str:
    if corner is None or index == MISSING:
        return ""
    if index == SWAPPED:
        return yolo_box(HOLE, corner)
    if index == SHIFTED_FAR:
        # Moved by more than its size, to the other side when the box would leave the image.
        step = SIDE + 6
        return yolo_box(HOLE, corner, (step if corner[0] + step + SIDE <= SIZE else -step, 0))
    if index == SHIFTED_HALF:
        step = SIDE // 2
        return yolo_box(SPOT, corner, (step if corner[0] + step + SIDE <= SIZE else -step, 0))
    return yolo_box(SPOT if SHADES[index] == BRIGHT else HOLE, corner)


@pytest.fixture(scope="module")
def opened(tmp_path_factory):
    root = tmp_path_factory.mktemp("regions")
    workspace = Workspace.open(root / "workspace")
    yield workspace, root
    workspace.close()


def image_path(index: int) -> str:
    return f"images/train/{index:02d}.png"


def suspicious(report: dict) -> list[dict]:
    return [issue for issue in report["issues"] if issue["kind"] == "suspicious_label"]


def test_detection_plants_found_with_problem(opened) -> None:
    workspace, root = opened
    write_dataset(root / "boxes", SHADES, ["hole", "spot"], detection_label)
    workspace.create_project("boxes", "detection")
    import_path(workspace, "boxes", root / "boxes", format="yolo")

    issues, notes = find_suspicious_regions(workspace, "boxes")

    assert notes == []
    problems = {issue["path"]: issue for issue in issues}
    planted = {image_path(MISSING): "missing_box", image_path(SWAPPED): "wrong_class",
               image_path(SHIFTED_FAR): "badly_placed", image_path(SHIFTED_HALF): "badly_placed"}
    for planted_path, problem in planted.items():
        assert planted_path in problems, f"{planted_path} was not flagged; flagged: {sorted(problems)}"
        assert problems[planted_path]["problem"] == problem, problems[planted_path]["detail"]
    worst = [issue["path"] for issue in issues[:len(planted) + 2]]
    assert set(planted) <= set(worst)
    assert [issue["score"] for issue in issues] == sorted((issue["score"] for issue in issues), reverse=True)
    swapped = problems[image_path(SWAPPED)]
    assert (swapped["given"], swapped["suggested"]) == ("hole", "spot")
    missing = problems[image_path(MISSING)]
    assert (missing["given"], missing["suggested"], missing["label"]) == ("no box", "spot box", "ok")
    assert missing["detail"].startswith("no labeled box where the detectors of the other folds find a spot")


def segmentation_label(index: int, corner: tuple[int, int] | None) -> str:
    if corner is None or index == MISSING:
        return ""
    if index == SWAPPED:
        return yolo_square(HOLE, corner)
    return yolo_square(SPOT if SHADES[index] == BRIGHT else HOLE, corner)


def test_segmentation_plants_found_with_problem(opened) -> None:
    workspace, root = opened
    corners = write_dataset(root / "masks", SHADES, ["hole", "spot"], segmentation_label)
    workspace.create_project("masks", "segmentation")
    import_path(workspace, "masks", root / "masks", format="yolo")

    report = check_project(workspace, "masks")

    issues = suspicious(report)
    problems = {issue["path"]: issue for issue in issues}
    missing, swapped = image_path(MISSING), image_path(SWAPPED)
    assert missing in problems, f"flagged: {sorted(problems)}"
    assert swapped in problems, f"flagged: {sorted(problems)}"
    assert {issue["path"] for issue in issues[:4]} >= {missing, swapped}
    assert problems[missing]["problem"] == "missing_region"
    assert (problems[missing]["given"], problems[missing]["suggested"]) == ("no defect", "spot")
    assert problems[swapped]["problem"] == "wrong_class"
    assert (problems[swapped]["given"], problems[swapped]["suggested"]) == ("hole", "spot")
    assert problems[swapped]["mask_classes"] == ["hole"]
    x, y = corners[MISSING]
    x_min, y_min, x_max, y_max = problems[missing]["box"]
    assert x_min <= x + SIDE
    assert x_max >= x
    assert y_min <= y + SIDE
    assert y_max >= y


def test_small_project_gets_note(opened) -> None:
    workspace, root = opened
    shades = [None] * 5 + [BRIGHT] * 2
    write_dataset(root / "few", shades, ["spot"], lambda index, corner: "" if corner is None else yolo_box(0, corner))
    workspace.create_project("few", "detection")
    import_path(workspace, "few", root / "few", format="yolo")

    report = check_project(workspace, "few")

    assert suspicious(report) == []
    expected = ("Suspicious labels were not searched, because the search trains 3 detection models on folds of the "
                "labeled images and needs at least 6 labeled images, 3 of them with regions; this project has 7, "
                "2 with regions.")
    assert expected in report["notes"]
    skipped = check_project(workspace, "few", labels=False)
    assert expected not in skipped["notes"]


def test_cleanlab_boxes_converted() -> None:
    class_names = ["ok", "hole", "spot"]
    truths = [[(2, 1.0, 2.0, 11.0, 12.0), (1, 20.0, 20.0, 30.0, 25.0)], []]
    predicted = [
        [{"class": "spot", "box": [1.5, 2.0, 11.0, 12.5], "score": 0.6},
         {"class": "spot", "box": [40.0, 40.0, 50.0, 50.0], "score": 0.9},
         {"class": "hole", "box": [20.0, 20.0, 30.0, 26.0], "score": 0.97}],
        [],
    ]

    labels, predictions = to_cleanlab_boxes(truths, predicted, class_names)

    assert labels[0]["bboxes"].tolist() == [[1.0, 2.0, 11.0, 12.0], [20.0, 20.0, 30.0, 25.0]]
    assert labels[0]["labels"].tolist() == [1, 0]
    assert labels[1]["bboxes"].shape == (0, 4)
    assert labels[1]["labels"].tolist() == []
    assert predictions[0][0].tolist() == [[20.0, 20.0, 30.0, 26.0, 0.97]]
    assert predictions[0][1].tolist() == [[40.0, 40.0, 50.0, 50.0, 0.9], [1.5, 2.0, 11.0, 12.5, 0.6]]
    assert [array.shape for array in predictions[1]] == [(0, 5), (0, 5)]


def test_cleanlab_boxes_rescaled() -> None:
    # Sure score 0.8: knots (0, 0), (0.5, 0.5), (0.8, 0.95), (1, 1).
    scale = ScoreScale.from_sure_score(0.8)
    predicted = [[{"class": "spot", "box": [0.0, 0.0, 4.0, 4.0], "score": score} for score in (0.9, 0.8, 0.65, 0.3)]]

    _, predictions = to_cleanlab_boxes([[]], predicted, ["ok", "spot"], scale=scale)

    assert predictions[0][0][:, 4] == pytest.approx([0.975, 0.95, 0.725, 0.3])
    assert scale.to_score(0.725) == pytest.approx(0.65)


@pytest.mark.parametrize(
    ("sure", "scores", "probabilities"),
    [
        (None, (0.0, 1.0), (0.0, 1.0)),
        (0.97, (0.0, 1.0), (0.0, 1.0)),
        (0.38, (0.0, 0.2, 0.38, 1.0), (0.0, 0.5, 0.95, 1.0)),
    ],
)
def test_score_scale_knots(sure, scores, probabilities) -> None:
    scale = ScoreScale.from_sure_score(sure)

    assert scale.scores == pytest.approx(scores)
    assert scale.probabilities == pytest.approx(probabilities)


def test_sure_score_counts_matched_boxes() -> None:
    class_names = ["ok", "hole", "spot"]
    truths = [[(2, 0.0, 0.0, 10.0, 10.0)], [(2, 0.0, 0.0, 10.0, 10.0)], [(1, 0.0, 0.0, 10.0, 10.0)], []]
    predicted = [
        [{"class": "spot", "box": [0.0, 0.0, 10.0, 10.0], "score": 0.9}],
        [{"class": "spot", "box": [1.0, 0.0, 10.0, 10.0], "score": 0.7}],
        [{"class": "spot", "box": [0.0, 0.0, 10.0, 10.0], "score": 0.99}],  # another class: no match
        [{"class": "spot", "box": [0.0, 0.0, 10.0, 10.0], "score": 0.2}],  # nothing labeled: no match
    ]

    # The matched scores are 0.9 and 0.7; their 0.25 quantile is 0.7 + 0.25 * 0.2.
    assert choose_sure_score(truths, predicted, class_names) == pytest.approx(0.75)
    assert choose_sure_score(truths[3:], predicted[3:], class_names) is None


def test_cleanlab_boxes_avoid_three_part_reading() -> None:
    # Three box classes with 5, 0 and 0 predictions would be read by cleanlab 2.9 as (boxes, labels, scores).
    class_names = ["ok", "a", "b", "c"]
    predicted = [[{"class": "a", "box": [0.0, 0.0, 4.0, 4.0], "score": score} for score in (0.9, 0.8, 0.7, 0.6, 0.5)]]

    _, predictions = to_cleanlab_boxes([[]], predicted, class_names)

    assert predictions[0][0][:, 4].tolist() == [0.9, 0.8, 0.7, 0.6]


@pytest.mark.parametrize(
    ("truths", "predicted", "message"),
    [
        ([[]], [], "1 labeled box lists but 0 predicted ones were given"),
        ([[(3, 0.0, 0.0, 1.0, 1.0)]], [[]], "labeled box [3.0, 0.0, 0.0, 1.0, 1.0] of image 0 has class index 3"),
        ([[]], [[{"class": "dent", "box": [0, 0, 1, 1], "score": 0.5}]], "predicted box class 'dent' of image 0"),
    ],
)
def test_cleanlab_boxes_invalid_input_rejected(truths, predicted, message) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        to_cleanlab_boxes(truths, predicted, ["ok", "hole", "spot"])


def test_box_scores_flag_missing_box() -> None:
    # Ten images with one matched spot box each; image 3 has a sure prediction where nothing is labeled.
    labels = [{"bboxes": np.array([[10.0, 10.0, 20.0, 20.0]]), "labels": np.array([0])} for _ in range(10)]
    predictions = [[np.array([[10.0, 10.0, 20.0, 20.0, 0.99]])] for _ in range(10)]
    predictions[3] = [np.array([[10.0, 10.0, 20.0, 20.0, 0.99], [40.0, 40.0, 50.0, 50.0, 0.99]])]

    scores = score_box_labels(labels, predictions)

    assert scores.flagged.tolist() == [3]
    assert int(np.argmin(scores.quality)) == 3
    assert np.isnan(scores.overlooked[3][0])
    assert scores.overlooked[3][1] < 0.5


def test_assign_folds_spreads_groups() -> None:
    has_region = [True] * 7 + [False] * 5

    folds = assign_folds(has_region)

    assert sorted(np.bincount(folds[:7]).tolist()) == [2, 2, 3]
    assert sorted(np.bincount(folds[7:]).tolist()) == [1, 2, 2]
    assert folds.tolist() == assign_folds(has_region).tolist()


def test_grid_labels_take_majority_class() -> None:
    # A 4 x 4 map on a 2 x 2 grid: each cell covers 2 x 2 pixels.
    class_map = np.array([[0, 1, 2, 2],
                          [1, 1, 2, 0],
                          [0, 0, 0, 0],
                          [0, 2, 0, 0]])

    assert grid_labels(class_map, 3, (2, 2)).tolist() == [[1, 2], [0, 0]]


def test_grid_halves_input_until_it_fits() -> None:
    assert choose_grid((128, 128)) == (128, 128)
    assert choose_grid((256, 640)) == (64, 160)
    assert choose_grid((512, 1280)) == (64, 160)


def test_fold_input_size_capped() -> None:
    # kolektorsdd: the trainer picks 1280 x 512, a fold segmenter a quarter of that area.
    assert choose_fold_input_size([(1263, 500)] * 3) == (640, 256)
    assert choose_fold_input_size([(64, 64)]) == (64, 64)
    assert choose_fold_input_size([(300, 200)]) == (320, 224)


def test_mask_scores_flag_missed_defect() -> None:
    labels = np.zeros((6, 8, 8), dtype=np.int64)
    pred_probs = np.zeros((6, 2, 8, 8), dtype=np.float32)
    pred_probs[:, 0] = 0.95
    for image in range(1, 6):
        labels[image, 2:5, 2:5] = 1
        pred_probs[image, 0, 2:5, 2:5] = 0.1
    pred_probs[0, 0, 4:7, 4:7] = 0.05  # image 0 is labeled all ok, but a 3 x 3 defect is predicted
    pred_probs[:, 1] = 1.0 - pred_probs[:, 0]

    scores = score_mask_labels(labels, pred_probs)

    assert scores.flagged.tolist() == [0]
    assert scores.issues[0, 4:7, 4:7].all()
    assert int(np.argmin(scores.quality)) == 0


def test_mask_scores_invalid_input_rejected() -> None:
    with pytest.raises(InvalidInputError, match=re.escape("labels of shape (2, 4, 4) and pred_probs of shape")):
        score_mask_labels(np.zeros((2, 4, 4), dtype=np.int64), np.zeros((2, 2, 4, 5)))
    with pytest.raises(InvalidInputError, match=re.escape("every label must be a class index 0..1")):
        score_mask_labels(np.full((1, 4, 4), 2), np.full((1, 2, 4, 4), 0.5))
