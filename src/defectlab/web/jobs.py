"""Jobs: long work that runs in a worker process outside any web request, recorded in the ``jobs`` table.

A job starts ``running`` and ends ``succeeded`` or ``failed``. Its ``message``
column contains a JSON object. It starts with ``project`` and ``options``, the
request. It gets ``pid`` and ``host`` once the worker process has started. At
the end it gets either ``result_sha256`` (the result JSON in the blob store) or
``error`` (the message of what went wrong). While it runs, a job that reports
its progress keeps the newest report in ``progress``: ``done``, ``total``,
``message`` and ``seconds`` since the work began. A training job's progress
also has ``loss_curves``: each loss per finished epoch so far (see
``defectlab.training.curves``).

A worker that is killed cannot record its end. So every read of a running job
checks that its worker process is still alive, and marks the job failed when
it is not. The server that started a worker also waits on it in a thread and
marks the job failed as soon as the worker exits without recording a result.

The worker is ``python -m defectlab.web.worker WORKSPACE JOB_ID`` in a new
session, so stopping the server with Ctrl+C does not stop jobs that are running.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select, update

from defectlab.errors import DefectlabError, InvalidInputError, NotFoundError
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Job

__all__ = ["FAILED", "JOB_KINDS", "RUNNING", "SUCCEEDED", "describe_job", "list_jobs", "run_job", "running_job",
           "start_job"]

logger = logging.getLogger(__name__)

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"

STARTUP_GRACE_S = 120.0
"""Seconds a worker may take to record its pid; a job without one after this never got a worker."""

_MESSAGE_CHARS = 4000  # the length of the jobs.message column
_MAX_ERROR_CHARS = 2000  # the rest of the message's JSON needs room beside the error


PROGRESS_INTERVAL_S = 1.0
"""Shortest time between two progress records of a job; training reports far more often than a page polls."""

Progress = Callable[[int, int, str], None]


class JobProgress:
    """Callable as ``progress(done, total, message)``: records the newest report in the job's row.

    Reports come faster than anyone reads them, so one is written at most every
    ``PROGRESS_INTERVAL_S`` seconds, except the last one (``done == total``).
    ``add_epoch`` collects loss curves, which go out with the next report.
    """

    def __init__(self, workspace: Workspace, job_id: int, state: dict[str, Any]) -> None:
        self.workspace, self.job_id, self.state = workspace, job_id, state
        self.started = time.monotonic()
        self.written = -PROGRESS_INTERVAL_S
        self.loss_curves: dict[str, list[float | None]] = {}

    def __call__(self, done: int, total: int, message: str) -> None:
        now = time.monotonic()
        if now - self.written < PROGRESS_INTERVAL_S and done < total:
            return
        self.written = now
        report = {"done": int(done), "total": int(total), "message": str(message)[:500],
                  "seconds": round(now - self.started, 1)}
        if self.loss_curves:
            report["loss_curves"] = self.loss_curves
        self.state["progress"] = report
        message = json.dumps(self.state, ensure_ascii=False)
        if len(message) > _MESSAGE_CHARS and "loss_curves" in report:
            # About 150 epochs of two curves fill the column; the result keeps every epoch anyway.
            logger.warning("job %d: loss curves of %d epochs no longer fit its progress; they appear with the result",
                           self.job_id, max(len(curve) for curve in self.loss_curves.values()))
            del report["loss_curves"]
            message = json.dumps(self.state, ensure_ascii=False)
        _update_running(self.workspace, self.job_id, message=message)

    def add_epoch(self, entry: Mapping[str, float]) -> None:
        """Add one epoch's history entry to the loss curves."""
        from defectlab.training.curves import append_epoch

        append_epoch(self.loss_curves, entry)


def _run_check(workspace: Workspace, project_name: str, *, progress: Progress, labels: bool = True) -> dict[str, Any]:
    from defectlab.quality.check import check_project

    return check_project(workspace, project_name, labels=labels)


def _run_training(workspace: Workspace, project_name: str, *, progress: Progress,
                  settings: dict[str, Any] | None = None) -> dict[str, Any]:
    from defectlab.training.run import train_project

    from defectlab.web.diagnoses import diagnose_trained_model

    on_epoch = progress.add_epoch if isinstance(progress, JobProgress) else None
    result = train_project(workspace, project_name, overrides=settings or None, progress=progress,
                           on_epoch=on_epoch).to_dict()
    progress(0, 1, "Diagnosing the model on its dev images")
    try:
        result["diagnosis"] = diagnose_trained_model(workspace, project_name, result)
    except DefectlabError as error:
        # The model is registered already, so the job succeeds and records why it has no diagnosis.
        logger.warning("model %d of %s was trained but not diagnosed: %s", result["model_id"], project_name, error)
        result["diagnosis"], result["diagnosis_error"] = None, str(error)
    progress(1, 1, "Done")
    return result


def _run_proposals(workspace: Workspace, project_name: str, *, progress: Progress, source: str = "auto",
                   model_id: int | None = None, blind_share: float = 0.1) -> dict[str, Any]:
    from defectlab.proposals import make_proposals

    return make_proposals(workspace, project_name, source=source, model_id=model_id, blind_share=blind_share,
                          progress=progress)


def _run_import(workspace: Workspace, project_name: str, *, progress: Progress, upload: str) -> dict[str, Any]:
    from defectlab.web.uploads import import_upload

    return import_upload(workspace, project_name, upload, progress=progress)


def _run_evaluation(workspace: Workspace, project_name: str, *, progress: Progress, model_id: int,
                    split: str = "test") -> dict[str, Any]:
    from defectlab.web.evaluations import evaluate_for_report

    return evaluate_for_report(workspace, project_name, model_id, split)


_RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {"check": _run_check, "train": _run_training,
                                                       "evaluate": _run_evaluation, "import": _run_import,
                                                       "propose": _run_proposals}
JOB_KINDS = tuple(_RUNNERS)


def start_job(workspace: Workspace, kind: str, project_name: str, options: dict[str, Any], *,
              started_by: str | None = None) -> dict[str, Any]:
    """Record a job of ``kind`` on a project, started by the account ``started_by``, start its worker process, and
    return the job (see ``describe_job``).

    Raises:
        InvalidInputError: ``kind`` is not one of ``JOB_KINDS``.
        NotFoundError: The project does not exist.
    """
    if kind not in _RUNNERS:
        raise InvalidInputError(f"job kind {kind!r} is not known; use one of: {', '.join(JOB_KINDS)}")

    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        job = Job(project_id=project.id, kind=kind, status=RUNNING, started_by=started_by,
                  message=json.dumps({"project": project_name, "options": options}))
        session.add(job)
        session.flush()
        job_id = job.id
    command = [sys.executable, "-m", "defectlab.web.worker", str(workspace.root.resolve()), str(job_id)]
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as error:
        _end_running(workspace, job_id, FAILED, error=f"the worker process did not start: {error}")
        raise DefectlabError(f"job {job_id} failed to start its worker process ({error})") from error

    threading.Thread(target=_reap, args=(workspace, job_id, process), name=f"job-{job_id}", daemon=True).start()
    logger.info("started %s job %d on project %s (worker pid %d)", kind, job_id, project_name, process.pid)
    return describe_job(workspace, job_id)


def describe_job(workspace: Workspace, job_id: int, *, with_result: bool = True) -> dict[str, Any]:
    """Return a job's id, kind, project, status, options, worker pid, who started it and when, when it ended,
    its error and, once succeeded, its result.

    A running job whose worker process is gone is marked failed first.

    Raises:
        NotFoundError: No job has this id.
    """
    job = _load(workspace, job_id)
    if job.status == RUNNING:
        reason = _worker_gone(_state(job), job.started_at)
        if reason is not None:
            _end_running(workspace, job_id, FAILED, error=reason)
            job = _load(workspace, job_id)

    state = _state(job)
    described = {"id": job.id, "kind": job.kind, "project": state.get("project"), "status": job.status,
                 "options": state.get("options", {}), "pid": state.get("pid"),
                 "started_by": job.started_by, "started_at": _iso(job.started_at), "finished_at": _iso(job.finished_at),
                 "progress": state.get("progress"), "error": state.get("error")}
    if with_result and job.status == SUCCEEDED:
        described["result"] = json.loads(workspace.blobs.get(state["result_sha256"]))
    return described


def list_jobs(workspace: Workspace, project_name: str | None = None) -> list[dict[str, Any]]:
    """Return the jobs, of one project or of all, newest first and without their results.

    Raises:
        NotFoundError: The project does not exist.
    """
    with workspace.session() as session:
        query = select(Job.id).order_by(Job.id.desc())
        if project_name is not None:
            query = query.where(Job.project_id == workspace.get_project(session, project_name).id)
        job_ids = list(session.scalars(query))
    return [describe_job(workspace, job_id, with_result=False) for job_id in job_ids]


def running_job(workspace: Workspace, project_name: str, kind: str) -> int | None:
    """Return the id of a running job of ``kind`` on the project whose worker is alive, or None.

    Raises:
        NotFoundError: The project does not exist.
    """
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        job_ids = list(session.scalars(select(Job.id).where(Job.project_id == project.id, Job.kind == kind,
                                                            Job.status == RUNNING)))
    for job_id in job_ids:
        if describe_job(workspace, job_id, with_result=False)["status"] == RUNNING:
            return job_id
    return None


def run_job(workspace: Workspace, job_id: int) -> bool:
    """Do a recorded job in this process and record how it ended; return whether it succeeded.

    Raises:
        NotFoundError: No job has this id.
        InvalidInputError: The job has ended already.
    """
    job = _load(workspace, job_id)
    if job.status != RUNNING:
        raise InvalidInputError(f"job {job_id} has ended already ({job.status}); start a new job instead")
    state = {**_state(job), "pid": os.getpid(), "host": socket.gethostname()}
    if not _update_running(workspace, job_id, message=json.dumps(state)):
        logger.warning("job %d ended before its worker started; nothing was done", job_id)
        return False

    try:
        progress = JobProgress(workspace, job_id, state)
        result = _RUNNERS[job.kind](workspace, state["project"], progress=progress, **state.get("options", {}))
    except DefectlabError as error:
        logger.error("job %d (%s) failed: %s", job_id, job.kind, error)
        _end_running(workspace, job_id, FAILED, error=str(error))
        return False
    except Exception as error:  # a bug must still end the job, with its traceback in the log
        logger.exception("job %d (%s) failed", job_id, job.kind)
        _end_running(workspace, job_id, FAILED, error=f"{type(error).__name__}: {error}")
        return False

    digest = workspace.blobs.put(json.dumps(result, ensure_ascii=False).encode("utf-8"))
    if not _end_running(workspace, job_id, SUCCEEDED, result_sha256=digest):
        logger.warning("job %d finished, but was marked failed meanwhile; its result %s is not recorded", job_id, digest)
        return False
    logger.info("job %d (%s) succeeded", job_id, job.kind)
    return True


def _reap(workspace: Workspace, job_id: int, process: subprocess.Popen) -> None:
    """Wait for a worker so it leaves no zombie, then fail its job if the worker recorded no end."""
    code = process.wait()
    if _end_running(workspace, job_id, FAILED,
                    error=f"the worker process (pid {process.pid}) exited with code {code} before recording a "
                          "result; it was killed or crashed. Start the job again"):
        logger.error("job %d failed: its worker process %d exited with code %d", job_id, process.pid, code)


def _worker_gone(state: dict[str, Any], started_at: datetime) -> str | None:
    """Return why a running job's worker is gone, or None while it is alive or cannot be checked from here.

    NOTE: a worker on another machine (a workspace database shared by URL) is not checked, and a pid
    the system has given to a new process reads as alive, so such a job stays running.
    """
    pid, host = state.get("pid"), state.get("host")
    if pid is None:
        waited = (datetime.now(timezone.utc) - _utc(started_at)).total_seconds()
        if waited > STARTUP_GRACE_S:
            return f"the worker process did not start within {STARTUP_GRACE_S:.0f} s; start the job again"
        return None
    if host != socket.gethostname():
        return None
    if _process_alive(int(pid)):
        return None
    return f"the worker process (pid {pid}) ended before recording a result; it was killed or crashed. Start the job again"


def _process_alive(pid: int) -> bool:
    if os.name == "nt":
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _windows_process_alive(pid: int) -> bool:
    # os.kill on Windows terminates the process whatever the signal, so ask the kernel instead.
    # NOTE: this branch has not been run on Windows.
    import ctypes

    synchronize, wait_timeout = 0x00100000, 0x102
    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(synchronize, False, pid)
    if not handle:
        return False
    try:
        return kernel32.WaitForSingleObject(handle, 0) == wait_timeout
    finally:
        kernel32.CloseHandle(handle)


def _load(workspace: Workspace, job_id: int) -> Job:
    with workspace.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            newest = session.scalar(select(Job.id).order_by(Job.id.desc()).limit(1))
            known = f"job ids go up to {newest}" if newest is not None else "no job was started yet"
            raise NotFoundError(f"job {job_id} does not exist ({known}); list them with GET /api/jobs")
        session.expunge(job)
        return job


def _update_running(workspace: Workspace, job_id: int, **values: Any) -> bool:
    """Change a job only while it is running, in one statement, so two processes cannot both end it."""
    with workspace.session() as session:
        changed = session.execute(update(Job).where(Job.id == job_id, Job.status == RUNNING).values(**values))
        return changed.rowcount == 1


def _end_running(workspace: Workspace, job_id: int, status: str, **outcome: Any) -> bool:
    """Record a running job's end and return True, or return False when it had ended already."""
    if "error" in outcome:
        outcome["error"] = str(outcome["error"])[:_MAX_ERROR_CHARS]
    with workspace.session() as session:
        job = session.get(Job, job_id)
        state = {**_state(job), **outcome} if job is not None else outcome
    return _update_running(workspace, job_id, status=status, message=json.dumps(state, ensure_ascii=False),
                           finished_at=datetime.now(timezone.utc))


def _state(job: Job) -> dict[str, Any]:
    try:
        state = json.loads(job.message or "{}")
    except ValueError:
        return {"error": job.message}
    return state if isinstance(state, dict) else {}


def _utc(moment: datetime) -> datetime:
    # SQLite returns the stored UTC times without a time zone.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else _utc(moment).isoformat(timespec="seconds")

