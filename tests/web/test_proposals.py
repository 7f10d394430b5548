"""Proposals through the REST API: made as a job, reviewed one at a time, reported."""

from __future__ import annotations

from defectlab.data.annotations import save_annotations
from defectlab.data.labels import list_images

UNLABELED = 6


def unlabel_some(workspace) -> list[int]:
    """Remove the labels of the first two images of each class; return their ids."""
    rows = list_images(workspace, "parts")
    chosen = [row for row in rows if row["path"].split("/")[-1] in {"0.png", "1.png"}]
    for row in chosen:
        save_annotations(workspace, "parts", row["id"], labeler="test", version=row["version"])
    return [row["id"] for row in chosen]


def propose(api, ended_job) -> dict:
    started = api.post("/api/projects/parts/proposals", json={"source": "features", "blind_share": 0.5})
    assert started.status_code == 202, started.text
    job = ended_job(started.json()["id"])
    assert job["status"] == "succeeded", job
    return job["result"]


def test_propose_review_and_report(api, workspace, parts, ended_job, person) -> None:
    unlabeled = unlabel_some(workspace)

    result = propose(api, ended_job)

    assert result["proposed"] == len(unlabeled) == UNLABELED
    listed = api.get("/api/projects/parts/proposals").json()
    assert sorted(row["image_id"] for row in listed) == sorted(unlabeled)
    assert all((row["label"] is None) == row["blind"] for row in listed)
    shown = next(row for row in listed if not row["blind"])

    accepted = api.post(f"/api/projects/parts/proposals/{shown['id']}/review",
                        json={"action": "accept"})
    again = api.post(f"/api/projects/parts/proposals/{shown['id']}/review",
                     json={"action": "reject"}, headers=person("bob"))

    assert accepted.status_code == 200
    assert accepted.json()["status"] == "accepted"
    assert again.status_code == 409
    assert "already accepted by ana" in again.json()["error"]
    image = api.get(f"/api/projects/parts/images/{shown['image_id']}").json()
    assert image["label"] == shown["label"]
    report = api.get("/api/projects/parts/proposals/report").json()
    assert report["by_status"]["accepted"] == 1
    assert report["open"] == UNLABELED - 1


def test_blind_check_answered_with_class(api, workspace, parts, ended_job) -> None:
    unlabel_some(workspace)
    propose(api, ended_job)
    blind = next(row for row in api.get("/api/projects/parts/proposals").json() if row["blind"])

    refused = api.post(f"/api/projects/parts/proposals/{blind['id']}/review",
                       json={"action": "accept"})
    answered = api.post(f"/api/projects/parts/proposals/{blind['id']}/review",
                        json={"action": "correct", "class": "dent"})

    assert refused.status_code == 400
    assert "blind check" in refused.json()["error"]
    assert answered.status_code == 200
    body = answered.json()
    assert body["answer"] == "dent"
    assert body["label"] in ("ok", "dent", "scratch")
    assert body["agrees"] == (body["label"] == "dent")


def test_next_and_invalid_requests(api, workspace, parts, ended_job) -> None:
    assert api.get("/api/projects/parts/proposals/next").json() is None
    unlabel_some(workspace)
    propose(api, ended_job)

    found = api.get("/api/projects/parts/proposals/next").json()
    listed = api.get("/api/projects/parts/proposals").json()

    assert found["id"] == listed[0]["id"]
    assert found["remaining"] == UNLABELED
    bad = api.post(f"/api/projects/parts/proposals/{found['id']}/review", json={"action": "ok"})
    assert bad.status_code == 400
    assert "action 'ok' is invalid" in bad.json()["error"]
    unknown = api.post("/api/projects/parts/proposals", json={"source": "magic"})
    assert unknown.status_code == 202
    job = ended_job(unknown.json()["id"])
    assert job["status"] == "failed"
    assert "source 'magic' is invalid" in job["error"]
