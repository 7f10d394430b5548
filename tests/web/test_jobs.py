"""Jobs: a data check runs in a worker process, and a job whose worker is gone ends as failed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from defectlab.web.jobs import JobProgress, describe_job
from defectlab.workspace.schema import Job


def wait_for(api, job_id: int, condition, seconds: float = 120.0) -> dict:
    """Poll a job until ``condition(job)`` is true and return it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = api.get(f"/api/jobs/{job_id}").json()
        if condition(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach the expected state in {seconds} s: {job}")


def record_job(workspace, **state) -> int:
    """Insert a running check job of project ``parts`` with ``state`` as its message; return its id."""
    started_at = state.pop("started_at", datetime.now(timezone.utc))
    with workspace.session() as session:
        job = Job(kind="check", status="running", started_at=started_at,
                  message=json.dumps({"project": "parts", "options": {}, **state}))
        session.add(job)
        session.flush()
        return job.id


def test_check_job_reports_issues(api, parts) -> None:
    started = api.post("/api/projects/parts/checks", json={"labels": False})
    assert started.status_code == 202
    assert (started.json()["status"], started.json()["options"]) == ("running", {"labels": False})

    job = wait_for(api, started.json()["id"], lambda job: job["status"] != "running")
    assert job["status"] == "succeeded"
    assert job["error"] is None
    report = job["result"]
    assert (report["project"], report["images"]) == ("parts", 12)
    # 4 labeled images per class is below the 20 a class needs, and nothing else is wrong with them.
    assert report["counts"] == {"coverage": 3}
    assert [issue["class"] for issue in report["issues"]] == ["ok", "dent", "scratch"]
    listed = api.get("/api/jobs", params={"project": "parts"}).json()
    assert [row["id"] for row in listed] == [job["id"]]
    assert "result" not in listed[0]


def test_killed_worker_ends_job_as_failed(api, parts) -> None:
    started = api.post("/api/projects/parts/checks", json={"labels": False}).json()
    running = wait_for(api, started["id"], lambda job: job["pid"] is not None or job["status"] != "running")
    assert running["status"] == "running", "the check ended before its worker could be killed"

    os.kill(running["pid"], signal.SIGKILL)
    failed = wait_for(api, started["id"], lambda job: job["status"] != "running", seconds=30)
    assert failed["status"] == "failed"
    assert "killed or crashed" in failed["error"]
    assert failed["finished_at"] is not None


@pytest.mark.skipif(os.name == "nt", reason="checks a POSIX pid")
def test_job_of_dead_worker_reads_as_failed(workspace, parts) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    dead_pid = int(finished.stdout)
    job_id = record_job(workspace, pid=dead_pid, host=socket.gethostname())

    job = describe_job(workspace, job_id)
    assert job["status"] == "failed"
    assert job["error"].startswith(f"the worker process (pid {dead_pid}) ended before recording a result")


@pytest.mark.parametrize(("age", "status"), [(timedelta(seconds=1), "running"), (timedelta(hours=1), "failed")])
def test_job_without_worker_fails_after_grace(workspace, parts, age, status) -> None:
    job_id = record_job(workspace, started_at=datetime.now(timezone.utc) - age)
    assert describe_job(workspace, job_id)["status"] == status


def test_live_worker_keeps_job_running(workspace, parts) -> None:
    job_id = record_job(workspace, pid=os.getpid(), host=socket.gethostname())
    assert describe_job(workspace, job_id)["status"] == "running"


def test_unknown_job_is_404(api) -> None:
    answer = api.get("/api/jobs/41")
    assert answer.status_code == 404
    assert answer.json() == {"error": "job 41 does not exist (no job was started yet); list them with GET /api/jobs"}



def running_job(workspace, project: str) -> int:
    """Record a running training job without starting a worker, and return its id."""
    with workspace.session() as session:
        job = Job(project_id=workspace.get_project(session, project).id, kind="train", status="running",
                  message=json.dumps({"project": project, "options": {}}))
        session.add(job)
        session.flush()
        return job.id


def test_progress_carries_loss_curves(workspace) -> None:
    workspace.create_project("curves", "classification", ["dent"])
    job_id = running_job(workspace, "curves")
    progress = JobProgress(workspace, job_id, {"project": "curves", "options": {}})

    progress.add_epoch({"epoch": 1, "train_loss": 0.5, "dev_loss": 0.61234567, "dev_accuracy": 0.5})
    progress(1, 2, "Training")

    assert describe_job(workspace, job_id)["progress"]["loss_curves"] == {"train": [0.5], "dev": [0.6123]}


def test_progress_drops_curves_too_long(workspace) -> None:
    workspace.create_project("long", "classification", ["dent"])
    job_id = running_job(workspace, "long")
    progress = JobProgress(workspace, job_id, {"project": "long", "options": {}})

    for epoch in range(1, 301):
        progress.add_epoch({"epoch": epoch, "train_loss": 0.123456 + epoch, "dev_loss": 0.654321 + epoch})
    progress(1, 2, "Training")

    described = describe_job(workspace, job_id)
    assert described["progress"]["message"] == "Training"
    assert "loss_curves" not in described["progress"]
