"""Training as a job: progress while it runs, the model when it ends, and a clear failure without labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.data.importer import import_path
from defectlab.web import jobs
from defectlab.web.jobs import describe_job, run_job
from defectlab.workspace.schema import Job


@pytest.fixture
def good_parts(workspace, tmp_path: Path) -> str:
    """Create anomaly project ``good`` with ten 32x32 images of the ok class."""
    folder = tmp_path / "good" / "good"
    folder.mkdir(parents=True)
    generator = np.random.default_rng(0)
    for number in range(10):
        Image.fromarray(generator.integers(100, 140, (32, 32), dtype=np.uint8)).save(folder / f"{number}.png")
    workspace.create_project("good", "anomaly")
    import_path(workspace, "good", folder.parent)
    return "good"


def test_training_job_registers_model(api, good_parts, ended_job) -> None:
    started = api.post("/api/projects/good/training", json={})
    assert started.status_code == 202
    assert started.json()["kind"] == "train"

    job = ended_job(started.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"]["done"] == job["progress"]["total"]
    assert job["progress"]["message"] == "Done"
    result = job["result"]
    models = api.get("/api/projects/good/models").json()
    assert [model["id"] for model in models] == [result["model_id"]]
    assert result["task"] == "anomaly"
    assert sum(result["counts"]["train"].values()) > 0


def test_training_without_labels_fails_with_reason(api, workspace, ended_job) -> None:
    workspace.create_project("empty", "classification", ["dent"])
    started = api.post("/api/projects/empty/training")
    assert started.status_code == 202
    job = ended_job(started.json()["id"])
    assert job["status"] == "failed"
    assert "label" in job["error"]
    assert api.get("/api/projects/empty/models").json() == []


def test_training_rejects_unknown_body_field(api, good_parts) -> None:
    answer = api.post("/api/projects/good/training", json={"epochs": 3})
    assert answer.status_code == 400
    assert "body.epochs: Extra inputs" in answer.json()["error"]


@pytest.mark.parametrize(("settings", "words"), [
    ({"epochs": 1000}, "setting 'epochs' is 1000, outside its safe range 1 to 100"),
    ({"epochs": 2.5}, "use a whole number"),
    ({"layers": 3}, "setting 'layers' is unknown"),
])
def test_training_rejects_unsafe_setting(api, good_parts, settings, words) -> None:
    answer = api.post("/api/projects/good/training", json={"settings": settings})
    assert answer.status_code == 400
    assert words in answer.json()["error"]
    assert api.get("/api/jobs").json() == []


def test_training_settings_list_ranges(api) -> None:
    settings = {row["name"]: row for row in api.get("/api/training/settings").json()}
    assert settings["epochs"] == {"name": "epochs", "min": 1, "max": 100, "integer": True}
    assert settings["learning_rate"]["integer"] is False


def test_progress_recorded_while_running(workspace, monkeypatch) -> None:
    workspace.create_project("parts", "classification")
    seen = []

    def fake_training(workspace, project_name, *, progress):
        progress(0, 3, "Extracting features")
        progress(1, 3, "Extracting features")
        seen.append(describe_job(workspace, job_id)["progress"])
        progress(3, 3, "Done")
        return {"model_id": 0}

    monkeypatch.setitem(jobs._RUNNERS, "train", fake_training)
    with workspace.session() as session:
        job = Job(kind="train", status="running", message=json.dumps({"project": "parts", "options": {}}))
        session.add(job)
        session.flush()
        job_id = job.id

    assert run_job(workspace, job_id)
    # The second report came within PROGRESS_INTERVAL_S of the first, so only the first was written.
    assert seen[0]["done"] == 0
    assert seen[0]["message"] == "Extracting features"
    ended = describe_job(workspace, job_id)
    assert ended["progress"]["done"] == 3
    assert ended["result"] == {"model_id": 0}


def test_evaluation_lists_image_outcomes(api, good_parts, ended_job) -> None:
    trained = ended_job(api.post("/api/projects/good/training", json={}).json()["id"])
    model_id = trained["result"]["model_id"]
    started = api.post(f"/api/projects/good/models/{model_id}/evaluations", json={"split": "test"})
    assert started.status_code == 202
    job = ended_job(started.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert result["class_names"] == ["ok", "anomaly"]
    rows = result["images"]
    assert len(rows) == sum(sum(row) for row in result["confusion_matrix"])
    assert {row["true"] for row in rows} == {"ok"}
    for row in rows:
        assert row["outcome"] == ("overkill" if row["is_defect"] else "correct")
    assert result["overkills"] == sum(row["outcome"] == "overkill" for row in rows)


@pytest.mark.parametrize(("url", "body", "status", "words"), [
    ("/api/projects/good/models/99/evaluations", {}, 404, "model 99 is not a model of project 'good'"),
    ("/api/projects/good/models/1/evaluations", {"split": "holdout"}, 400, "split 'holdout' is not valid"),
])
def test_evaluation_rejects_bad_request(api, good_parts, url, body, status, words) -> None:
    answer = api.post(url, json=body)
    assert answer.status_code == status
    assert words in answer.json()["error"]
