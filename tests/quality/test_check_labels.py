"""The label search and coverage handle classes with few or no images: a clear result or a clear message."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from defectlab.data.importer import import_path
from defectlab.errors import InvalidInputError
from defectlab.quality.check import check_project, find_suspicious_labels
from defectlab.samples import draw_part
from defectlab.workspace import Workspace
from defectlab.workspace.schema import DefectClass


def test_class_without_labels_not_flagged() -> None:
    # Three columns, but no image is labeled 2. Rows 1 and 3 put 0.7 on class 2.
    labels = np.array([0, 0, 1, 1])
    pred_probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.1, 0.7], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7]])

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flagged, quality = find_suspicious_labels(labels, pred_probs)

    assert flagged.tolist() == []
    assert quality == pytest.approx([0.8, 0.2, 0.8, 0.2])


def test_class_without_labels_keeps_other_flags() -> None:
    labels = np.array([0] * 20 + [1] * 20)
    pred_probs = np.zeros((40, 3))
    pred_probs[:20] = [0.9, 0.05, 0.05]
    pred_probs[20:] = [0.05, 0.9, 0.05]
    pred_probs[3] = [0.05, 0.05, 0.9]  # labeled 0, looks like class 2, which no image has
    pred_probs[25] = [0.9, 0.05, 0.05]  # labeled 1, looks like class 0

    flagged, quality = find_suspicious_labels(labels, pred_probs)

    assert flagged.tolist() == [25]
    assert quality[3] == pytest.approx(0.05)
    assert int(np.argmin(quality)) in (3, 25)


def test_no_images_gives_empty_result() -> None:
    flagged, quality = find_suspicious_labels(np.zeros(0, dtype=int), np.zeros((0, 3)))
    assert flagged.shape == (0,)
    assert quality.shape == (0,)


@pytest.mark.parametrize(
    ("labels", "pred_probs", "message"),
    [
        ([0, 1, 1], [[0.5, 0.5]] * 4, "labels of shape (3,) and pred_probs of shape (4, 2) are invalid"),
        ([0, 0], [[1.0], [1.0]], "with C of at least 2"),
        ([0, 3, 1, -1], [[0.5, 0.5]] * 4, "labels at rows 1, 3 are outside 0..1"),
        ([0.0, 1.0], [[0.5, 0.5]] * 2, "labels of dtype float64 are invalid"),
        ([0, 1, 0], [[0.5, 0.5], [0.7, 0.7], [0.5, 0.5]], "pred_probs rows 1 are not probability distributions"),
        ([0, 1], [[1.5, -0.5], [0.5, 0.5]], "pred_probs rows 0 are not probability distributions"),
        ([0, 1], [[0.5, 0.5], [np.nan, 1.0]], "pred_probs rows 1 are not probability distributions"),
    ],
)
def test_invalid_input_rejected(labels, pred_probs, message) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        find_suspicious_labels(np.array(labels), np.array(pred_probs))


def write_parts(folder: Path, count: int, *, defect: str | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(draw_part(rng, size=48, defect=defect)[0]).save(folder / f"{index:02d}.png")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("thin")
    opened = Workspace.open(root / "ws")
    yield opened, root
    opened.close()


def test_one_usable_class_skips_search(workspace) -> None:
    opened, root = workspace
    write_parts(root / "one" / "good", 12, defect=None, seed=1)
    write_parts(root / "one" / "scratch", 3, defect="scratch", seed=2)
    opened.create_project("one", "classification")
    import_path(opened, "one", root / "one", format="folders")
    with opened.session() as session:
        project = opened.get_project(session, "one")
        project.classes.append(DefectClass(name="dent", position=len(project.classes)))

    report = check_project(opened, "one")

    assert "suspicious_label" not in report["counts"]
    expected = ("Suspicious labels were not searched, because the search needs at least two classes with 5 or more "
                "labeled images each, and this project has 1.")
    assert report["notes"] == [expected]
    coverage = [(issue["class"], issue["images"], issue["detail"]) for issue in report["issues"]
                if issue["kind"] == "coverage"]
    assert coverage == [
        ("dent", 0, "class dent has no labeled images"),
        ("scratch", 3, "class scratch has 3 labeled images"),
        ("ok", 12, "class ok has 12 labeled images"),
    ]


def test_thin_class_left_out_with_note(workspace) -> None:
    opened, root = workspace
    write_parts(root / "two" / "good", 8, defect=None, seed=3)
    write_parts(root / "two" / "scratch", 5, defect="scratch", seed=4)
    write_parts(root / "two" / "spot", 2, defect="spot", seed=5)
    opened.create_project("two", "classification")
    import_path(opened, "two", root / "two", format="folders")

    report = check_project(opened, "two")

    expected = ("The search for suspicious labels left out spot (2 labeled images), because cross-validation "
                "needs at least 5 labeled images of a class.")
    assert report["notes"] == [expected]
    searched = {issue["label"] for issue in report["issues"] if issue["kind"] == "suspicious_label"}
    assert searched <= {"ok", "scratch"}


def test_detection_class_without_boxes_reported(workspace) -> None:
    # data.yaml lists two classes, but every label line uses class 0.
    opened, root = workspace
    dataset = root / "yolo"
    (dataset / "labels" / "train").mkdir(parents=True)
    (dataset / "data.yaml").write_text(yaml.safe_dump({"train": "images/train", "names": ["scratch", "dent"]}))
    write_parts(dataset / "images" / "train", 12, defect=None, seed=6)
    for index in range(12):
        line = "0 0.5 0.5 0.2 0.2\n" if index < 8 else ""
        (dataset / "labels" / "train" / f"{index:02d}.txt").write_text(line)
    opened.create_project("boxes", "detection")
    import_path(opened, "boxes", dataset, format="yolo")

    # Coverage does not depend on the label search, which would train three detectors here.
    report = check_project(opened, "boxes", labels=False)

    coverage = {issue["class"]: issue for issue in report["issues"] if issue["kind"] == "coverage"}
    assert coverage["dent"]["images"] == 0
    assert coverage["dent"]["detail"] == "class dent has no labeled images"
    assert coverage["dent"]["action"] == "add about 20 more images of dent"
    assert coverage["scratch"]["images"] == 8


def test_empty_project_checked(workspace) -> None:
    opened, _ = workspace
    opened.create_project("empty", "segmentation")

    report = check_project(opened, "empty")

    assert report["images"] == 0
    assert report["counts"] == {"coverage": 1}
    assert report["issues"][0]["detail"] == "class ok has no labeled images"
    labels = ("Suspicious labels were not searched, because the search trains 3 segmentation models on folds of "
              "the labeled images and needs at least 6 labeled images, 3 of them with regions; this project has 0, "
              "0 with regions.")
    outliers = ("Outliers were not searched, because the search needs at least 10 images to learn what is usual, "
                "and this project has 0.")
    assert report["notes"] == [labels, outliers]
