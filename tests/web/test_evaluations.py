"""The model report's evaluation: precision-recall points, coarse heatmaps and boxes to draw over each image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.data.importer import import_path
from defectlab.data.labels import list_images
from defectlab.errors import InvalidInputError
from defectlab.web.evaluations import coarse_heatmap, precision_recall_points


def brute_force_point(truth: list[bool], scores: list[float], threshold: float) -> tuple[float, float]:
    """Return (precision, recall) when every image scoring at least ``threshold`` is called defective."""
    called = [score >= threshold for score in scores]
    caught = sum(1 for is_defect, call in zip(truth, called) if is_defect and call)
    return caught / sum(called), caught / sum(truth)


def test_precision_recall_matches_counting() -> None:
    truth = [False, True, False, True, True, False, True, False]
    scores = [0.1, 0.9, 0.35, 0.35, 0.8, 0.7, 0.2, 0.05]
    called = [score > 0.5 for score in scores]

    points = precision_recall_points(truth, scores, called)

    assert points["thresholds"] == sorted(set(scores))
    for threshold, precision, recall in zip(points["thresholds"], points["precision"], points["recall"]):
        assert (precision, recall) == pytest.approx(brute_force_point(truth, scores, threshold), abs=1e-6)
    assert (points["precision"][-1], points["recall"][-1]) == (1.0, 0.0)
    # Called defective above 0.5: 0.9, 0.8 (defective) and 0.7 (good).
    assert points["chosen"] == {"recall": pytest.approx(2 / 4), "precision": pytest.approx(2 / 3)}


def test_precision_recall_nothing_called() -> None:
    points = precision_recall_points([True, False], [0.2, 0.1], [False, False])

    assert points["chosen"] == {"recall": 0.0, "precision": None}


def test_precision_recall_needs_both_kinds() -> None:
    with pytest.raises(InvalidInputError, match="need both good and defective images"):
        precision_recall_points([True, True], [0.2, 0.1], [True, False])


def test_coarse_heatmap_keeps_maximum() -> None:
    heatmap = np.zeros((70, 100))
    heatmap[33, 61] = 0.87

    cells = coarse_heatmap(heatmap, cells=10)

    # 100 px over 10 cells is 10 px a cell, so 70 rows make 7 cell rows; the hot pixel falls in cell (3, 6).
    assert cells["cell"] == 10
    assert len(cells["values"]) == 7
    assert {len(row) for row in cells["values"]} == {10}
    assert cells["values"][3][6] == 0.87
    assert sum(value for row in cells["values"] for value in row) == pytest.approx(0.87)


@pytest.fixture
def cracks(workspace, tmp_path: Path, api) -> str:
    """Create anomaly project ``cracks``: 12 good 32x32 images (8 train, 2 dev, 2 test) and 4 cracked (2 dev, 2 test)."""
    generator = np.random.default_rng(4)
    for name, count in (("good", 12), ("crack", 4)):
        (tmp_path / "cracks" / name).mkdir(parents=True)
        for number in range(count):
            pixels = generator.integers(100, 140, (32, 32)).astype(np.uint8)
            if name == "crack":
                pixels[10:22, 15:17] = 250
            Image.fromarray(pixels).save(tmp_path / "cracks" / name / f"{number:02d}.png")
    workspace.create_project("cracks", "anomaly")
    import_path(workspace, "cracks", tmp_path / "cracks")
    ids = {row["path"]: row["id"] for row in list_images(workspace, "cracks")}
    splits = {"train": [ids[f"good/{n:02d}.png"] for n in range(8)],
              "test": [ids["good/10.png"], ids["good/11.png"], ids["crack/00.png"], ids["crack/01.png"]],
              "dev": [ids["good/08.png"], ids["good/09.png"], ids["crack/02.png"], ids["crack/03.png"]]}
    for split, image_ids in splits.items():
        answer = api.post("/api/projects/cracks/images/bulk",
                          json={"image_ids": image_ids, "action": "set_split", "value": split})
        assert answer.status_code == 200, answer.text
    return "cracks"


def test_anomaly_evaluation_has_heatmaps_and_curve(api, cracks, ended_job) -> None:
    trained = ended_job(api.post("/api/projects/cracks/training", json={}).json()["id"])
    assert trained["status"] == "succeeded", trained["error"]
    model_id = trained["result"]["model_id"]
    job = ended_job(api.post(f"/api/projects/cracks/models/{model_id}/evaluations", json={"split": "test"}).json()["id"])
    assert job["status"] == "succeeded", job["error"]

    result = job["result"]
    rows = result["images"]
    assert len(rows) == 4
    for row in rows:
        assert (row["width"], row["height"]) == (32, 32)
        assert row["heatmap"]["cell"] == 1
        assert len(row["heatmap"]["values"]) == 32
        assert {len(cells) for cells in row["heatmap"]["values"]} == {32}
        assert row["labeled_boxes"] == []
        assert row["predicted_boxes"] == []
    curve = result["precision_recall"]
    truth = [row["true"] != "ok" for row in rows]
    scores = [row["score"] for row in rows]
    for threshold, precision, recall in zip(curve["thresholds"], curve["precision"], curve["recall"]):
        assert (precision, recall) == pytest.approx(brute_force_point(truth, scores, threshold), abs=1e-5)


def test_evaluation_of_one_kind_explains_curve(api, cracks, ended_job) -> None:
    trained = ended_job(api.post("/api/projects/cracks/training", json={}).json()["id"])
    model_id = trained["result"]["model_id"]
    job = ended_job(api.post(f"/api/projects/cracks/models/{model_id}/evaluations", json={"split": "train"}).json()["id"])
    assert job["status"] == "succeeded", job["error"]

    assert job["result"]["precision_recall"] == {
        "reason": "All 8 images of this split are good, so precision and recall of defect scores cannot be "
                  "traded off here; evaluate a split with both kinds."}


def test_detection_evaluation_has_boxes(api, workspace, tmp_path: Path, ended_job) -> None:
    from defectlab.samples import write_class_folders

    source = write_class_folders(tmp_path / "plates", good=10, per_defect=6, size=96)
    workspace.create_project("plates", "detection")
    import_path(workspace, "plates", source)
    trained = ended_job(api.post("/api/projects/plates/training", json={"settings": {"epochs": 3}}).json()["id"])
    assert trained["status"] == "succeeded", trained["error"]
    model_id = trained["result"]["model_id"]
    job = ended_job(api.post(f"/api/projects/plates/models/{model_id}/evaluations", json={"split": "test"}).json()["id"])
    assert job["status"] == "succeeded", job["error"]

    rows = job["result"]["images"]
    assert any(row["predicted_boxes"] for row in rows), "the detector found no box, so the boxes go unchecked"
    for row in rows:
        assert row["heatmap"] is None
        if row["true"] == "ok":
            assert row["labeled_boxes"] == []
            continue
        # Each generated part has one defect, whose box is the extent of its mask written beside the image.
        mask = np.asarray(Image.open(source / row["path"].replace(".png", "_mask.png"))) > 0
        ys, xs = np.nonzero(mask)
        assert row["labeled_boxes"] == [{"class": row["true"],
                                         "box": [float(xs.min()), float(ys.min()), float(xs.max() + 1),
                                                 float(ys.max() + 1)]}]
        for box in row["predicted_boxes"]:
            x_min, y_min, x_max, y_max = box["box"]
            assert 0 <= x_min < x_max <= 96
            assert 0 <= y_min < y_max <= 96
