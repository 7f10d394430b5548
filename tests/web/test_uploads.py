"""Uploads: files staged under their relative paths, imported by a job with a per-file report, and kept inside."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image


def png(value: int, size: int = 16) -> bytes:
    stream = io.BytesIO()
    Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(stream, format="PNG")
    return stream.getvalue()


@pytest.fixture
def plates(workspace) -> str:
    workspace.create_project("plates", "classification", ["scratch"])
    return "plates"


def upload(api, files: list[tuple[str, bytes]]) -> tuple[str, dict]:
    upload_id = api.post("/api/projects/plates/uploads").json()["upload"]
    sent = api.post(f"/api/projects/plates/uploads/{upload_id}/files",
                    files=[("files", (name, data, "application/octet-stream")) for name, data in files])
    return upload_id, sent


def test_folder_with_bad_file_imports_rest(api, plates, workspace, ended_job) -> None:
    truncated = png(200)[:40]
    upload_id, sent = upload(api, [("parts/good/0.png", png(10)), ("parts/good/1.png", png(20)),
                                   ("parts/scratch/0.png", png(250)), ("parts/scratch/broken.png", truncated)])
    assert sent.status_code == 200, sent.text
    assert sent.json()["files"] == 4
    started = api.post(f"/api/projects/plates/uploads/{upload_id}/import")
    assert started.status_code == 202
    job = ended_job(started.json()["id"], seconds=120.0)
    assert job["status"] == "succeeded", job["error"]
    report = job["result"]
    assert report["added"] == 3
    assert report["skipped"] == 1
    assert report["files"] == 4
    assert any("broken.png" in problem["path"] for problem in report["problems"])
    assert api.get("/api/projects/plates/browse?label=scratch").json()["total"] == 1
    assert not (workspace.root / "uploads" / upload_id).exists()


@pytest.mark.parametrize("name", ["../evil.png", "/etc/evil.png", "good/../../evil.png", "C:/evil.png",
                                  "..\\evil.png"])
def test_path_outside_upload_rejected(api, plates, workspace, name) -> None:
    upload_id, sent = upload(api, [("good/0.png", png(10)), (name, png(20))])
    assert sent.status_code == 400
    assert "points outside the upload" in sent.json()["error"]
    assert not list((workspace.root / "uploads" / upload_id).rglob("*.png"))
    assert not (workspace.root / "uploads" / "evil.png").exists()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return stream.getvalue()


def test_zip_unpacked_and_imported(api, plates, ended_job) -> None:
    archive = zip_bytes({"good/0.png": png(10), "scratch/0.png": png(240)})
    upload_id, sent = upload(api, [("parts.zip", archive)])
    assert sent.status_code == 200
    job = ended_job(api.post(f"/api/projects/plates/uploads/{upload_id}/import").json()["id"], seconds=120.0)
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["added"] == 2


def test_zip_escaping_its_folder_fails(api, plates, workspace, ended_job) -> None:
    archive = zip_bytes({"good/0.png": png(10), "../../escaped.png": png(240)})
    upload_id, _ = upload(api, [("parts.zip", archive)])
    job = ended_job(api.post(f"/api/projects/plates/uploads/{upload_id}/import").json()["id"], seconds=120.0)
    assert job["status"] == "failed"
    assert "points outside the upload" in job["error"]
    assert not list(workspace.root.rglob("escaped.png"))
    assert api.get("/api/projects/plates/browse").json()["total"] == 0


def test_upload_over_limit_rejected(api, plates, monkeypatch) -> None:
    monkeypatch.setenv("DEFECTLAB_MAX_UPLOAD_BYTES", "100")
    _, sent = upload(api, [("good/0.png", png(10, size=64))])
    assert sent.status_code in (400, 413)
    assert "limit" in sent.json()["error"]


def test_unknown_upload_is_404(api, plates) -> None:
    answer = api.post("/api/projects/plates/uploads/0123456789abcdef0123456789abcdef/import")
    assert answer.status_code == 404
    assert "does not exist" in answer.json()["error"]
    bad = api.post("/api/projects/plates/uploads/nope/files", files=[("files", ("a.png", png(1), "image/png"))])
    assert bad.status_code == 404
