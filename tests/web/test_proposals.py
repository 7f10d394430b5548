"""Proposals through the REST API: made as a job, reviewed one at a time, reported."""

from __future__ import annotations

from defectlab.data.annotations import save_annotations
from defectlab.data.labels import list_images
from defectlab.proposals import refresh

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


def test_review_starts_refresh_when_due(api, workspace, parts, ended_job, monkeypatch) -> None:
    # 6 labeled images and REFRESH_GROWTH of a half: new proposals are due after 3 reviews, at this minimum.
    monkeypatch.setattr(refresh, "MIN_NEW_LABELS", 3)
    unlabel_some(workspace)
    propose(api, ended_job)
    first, second, third = api.get("/api/projects/parts/proposals").json()[:3]
    for proposal in (first, second):
        quiet = api.post(f"/api/projects/parts/proposals/{proposal['id']}/review",
                         json={"action": "correct", "class": "ok"})
        assert quiet.status_code == 200
        assert quiet.json()["refresh_job"] is None

    reviewed = api.post(f"/api/projects/parts/proposals/{third['id']}/review",
                        json={"action": "correct", "class": "dent"})

    assert reviewed.status_code == 200
    job_id = reviewed.json()["refresh_job"]
    assert isinstance(job_id, int)
    job = ended_job(job_id)
    assert job["kind"] == "propose"
    assert job["status"] == "succeeded", job
    assert job["options"] == {"source": "features", "blind_share": 0.5}
    assert job["result"]["proposed"] == UNLABELED - 3
    listed = api.get("/api/projects/parts/proposals?status=all").json()
    assert sum(row["status"] == "replaced" for row in listed) == UNLABELED - 3
    stale = next(row for row in listed if row["status"] == "replaced")
    late = api.post(f"/api/projects/parts/proposals/{stale['id']}/review", json={"action": "reject"})
    assert late.status_code == 409
    assert "replaced by a newer proposal" in late.json()["error"]
