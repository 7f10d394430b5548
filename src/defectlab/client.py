"""A Python client of the REST API that ``defectlab ui`` serves, built on the standard library only.

Each method calls one route and returns its JSON. An error response raises
the ``defectlab.errors`` class of its status (400 ``InvalidInputError``,
401 ``SignInError``, 403 ``ForbiddenError``, 404 ``NotFoundError``, 409
``ConflictError``, 422 ``TrainingError``, any other ``DefectlabError``) with
the server's message. The client acts as the account of its API token
(``defectlab users token NAME`` issues one), and the server records that
account's name with every change::

    from defectlab import Client

    client = Client("http://127.0.0.1:8765", token="dl_...")
    job = client.start_check("parts", labels=False)
    report = client.wait(job["id"])["result"]
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from defectlab.errors import (
    ConflictError,
    DefectlabError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    SignInError,
    TrainingError,
)

__all__ = ["Client", "JobFailedError"]

_ERRORS: dict[int, type[DefectlabError]] = {400: InvalidInputError, 401: SignInError, 403: ForbiddenError,
                                            404: NotFoundError, 409: ConflictError, 422: TrainingError}


class JobFailedError(DefectlabError):
    """A job ended as failed; ``job`` is its description, with the worker's message in ``job["error"]``."""

    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(f"job {job['id']} ({job['kind']} of project {job['project']!r}) failed: {job['error']}")
        self.job = job


class Client:
    """The REST API of one defectlab server.

    Args:
        base_url: The server's address, as ``defectlab ui`` prints it (``/api`` may be left out).
        token: An API token of the account to act as, sent as ``Authorization: Bearer TOKEN``.
        timeout: Seconds to wait for each response.
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8765", token: str | None = None, *,
                 timeout: float = 60.0) -> None:
        root = base_url.rstrip("/")
        self.base_url = root if root.endswith("/api") else f"{root}/api"
        self.token = token
        self.timeout = timeout

    # Projects

    def projects(self) -> list[dict[str, Any]]:
        """Return every project with its task type, classes and image, label and model counts."""
        return self._call("GET", "projects")

    def project(self, name: str) -> dict[str, Any]:
        return self._call("GET", "projects", name)

    def create_project(self, name: str, task: str, classes: list[str] | None = None) -> dict[str, Any]:
        """Create a project of task type ``task`` (classification, anomaly, segmentation or detection)."""
        return self._call("POST", "projects", body={"name": name, "task": task, "classes": classes or []})

    def add_classes(self, project: str, names: list[str]) -> dict[str, Any]:
        """Add defect classes; return the ones ``added`` and all the project's ``classes``."""
        return self._call("POST", "projects", project, "classes", body={"names": names})

    def agreement(self, project: str, labelers: list[str] | None = None) -> dict[str, Any]:
        """Measure agreement on the project's image classes, between ``labelers`` (default: everyone)."""
        return self._call("GET", "projects", project, "agreement", query={"labeler": labelers})

    # Images

    def images(self, project: str, *, unlabeled: bool = False, source: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "projects", project, "images", query={"unlabeled": unlabeled, "source": source})

    def image(self, project: str, image_id: int) -> dict[str, Any]:
        return self._call("GET", "projects", project, "images", image_id)

    def image_file(self, project: str, image_id: int) -> bytes:
        """Return the image's original bytes, as they were imported."""
        return self._call("GET", "projects", project, "images", image_id, "file", raw=True)

    def set_image_class(self, project: str, image_id: int, class_name: str, *, labeler: str | None = None,
                        version: int | None = None) -> dict[str, Any]:
        """Give an image a class; with ``version``, a change made since raises ``ConflictError``."""
        body = {"class": class_name, "labeler": labeler, "version": version}
        return self._call("PUT", "projects", project, "images", image_id, "class", body=body)

    # Labeling tasks

    def tasks(self, project: str) -> list[dict[str, Any]]:
        return self._call("GET", "projects", project, "tasks")

    def task(self, project: str, task: str) -> dict[str, Any]:
        return self._call("GET", "projects", project, "tasks", task)

    def create_task(self, project: str, name: str, labelers: list[str], *, created_by: str | None = None,
                    image_ids: list[int] | None = None, unlabeled: bool = False, count: int | None = None,
                    seed: int = 0) -> dict[str, Any]:
        """Hand the same images to 2 to 5 labelers, who label them blind."""
        body = {"name": name, "labelers": labelers, "created_by": created_by, "image_ids": image_ids,
                "unlabeled": unlabeled, "count": count, "seed": seed}
        return self._call("POST", "projects", project, "tasks", body=body)

    def next_image(self, project: str, task: str, labeler: str | None = None) -> dict[str, Any] | None:
        """Return the labeler's (default: the account's own) next image of the task, or None when they have labeled
        every one."""
        return self._call("GET", "projects", project, "tasks", task, "next", query={"labeler": labeler})

    def annotations(self, project: str, task: str, image_id: int, labeler: str | None = None) -> list[dict[str, Any]]:
        """Return the labeler's own annotations of one task image."""
        return self._call("GET", "projects", project, "tasks", task, "images", image_id, "annotations",
                          query={"labeler": labeler})

    def annotate(self, project: str, task: str, image_id: int, labeler: str | None = None, *,
                 class_name: str | None = None,
                 regions: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Store a labeler's annotation: ``class_name`` for the whole image, or ``regions`` with a box or polygon."""
        body = {"labeler": labeler, "class": class_name, "regions": regions}
        return self._call("PUT", "projects", project, "tasks", task, "images", image_id, "annotations", body=body)

    def task_agreement(self, project: str, task: str) -> dict[str, Any]:
        return self._call("GET", "projects", project, "tasks", task, "agreement")

    def review(self, project: str, task: str) -> list[dict[str, Any]]:
        """Return every task image with all labelers' annotations and its decision, unsettled ones first."""
        return self._call("GET", "projects", project, "tasks", task, "review")

    def settle(self, project: str, task: str, image_id: int, *, reviewer: str | None = None,
               class_name: str | None = None,
               labeler: str | None = None, ambiguous: bool = False, note: str | None = None) -> dict[str, Any]:
        """Settle one task image: into its label, or with ``ambiguous`` into a borderline example in the book."""
        body = {"reviewer": reviewer, "class": class_name, "labeler": labeler, "ambiguous": ambiguous, "note": note}
        return self._call("POST", "projects", project, "tasks", task, "images", image_id, "settle", body=body)

    def settle_agreed(self, project: str, task: str, *, reviewer: str | None = None) -> dict[str, int]:
        return self._call("POST", "projects", project, "tasks", task, "settle-agreed", body={"reviewer": reviewer})

    # Defect book

    def book(self, project: str) -> list[dict[str, Any]]:
        return self._call("GET", "projects", project, "book")

    def book_entry(self, project: str, class_name: str, *, version: int | None = None) -> dict[str, Any]:
        return self._call("GET", "projects", project, "book", class_name, query={"version": version})

    def book_history(self, project: str, class_name: str) -> list[dict[str, Any]]:
        return self._call("GET", "projects", project, "book", class_name, "history")

    def update_book_entry(self, project: str, class_name: str, *, author: str | None = None,
                          definition: str | None = None,
                          rule: dict[str, Any] | None = None, based_on: int | None = None) -> dict[str, Any]:
        """Change a definition or decision rule; with ``based_on``, a change made since raises ``ConflictError``."""
        body = {"author": author, "definition": definition, "rule": rule, "based_on": based_on}
        return self._call("PATCH", "projects", project, "book", class_name, body=body)

    def add_example(self, project: str, class_name: str, image_id: int, *, author: str | None = None,
                    role: str = "example",
                    note: str | None = None) -> dict[str, Any]:
        """Link an image as an ``example``, ``counter_example`` or ``borderline`` case."""
        body = {"image_id": image_id, "role": role, "author": author, "note": note}
        return self._call("POST", "projects", project, "book", class_name, "examples", body=body)

    def remove_example(self, project: str, class_name: str, image_id: int, *,
                       author: str | None = None) -> dict[str, Any]:
        return self._call("DELETE", "projects", project, "book", class_name, "examples", image_id,
                          query={"author": author})

    # Jobs

    def start_check(self, project: str, *, labels: bool = True) -> dict[str, Any]:
        """Start a data check of the project as a job and return the job; ``wait`` for its report."""
        return self._call("POST", "projects", project, "checks", body={"labels": labels})

    def start_training(self, project: str, *, settings: dict[str, Any] | None = None) -> dict[str, Any]:
        """Start training a model of the project as a job and return the job; ``wait`` for the model.

        Args:
            settings: Settings to use in place of the auto-tuner's, such as ``{"epochs": 20}``.
        """
        return self._call("POST", "projects", project, "training", body={"settings": settings})

    def models(self, project: str) -> list[dict[str, Any]]:
        """Return the project's models, oldest first."""
        return self._call("GET", "projects", project, "models")

    def job(self, job_id: int) -> dict[str, Any]:
        return self._call("GET", "jobs", job_id)

    def jobs(self, project: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "jobs", query={"project": project})

    def wait(self, job_id: int, *, timeout: float | None = None, poll_interval: float = 1.0) -> dict[str, Any]:
        """Poll a job until it ends and return it, with its ``result`` when it succeeded.

        Raises:
            JobFailedError: The job failed; the exception's message is the job's error.
            TimeoutError: The job was still running after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] == "failed":
                raise JobFailedError(job)
            if job["status"] != "running":
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still running after {timeout} s; call wait again to keep waiting")
            time.sleep(poll_interval)

    # Accounts

    def whoami(self) -> dict[str, Any]:
        """Return the ``name`` and ``role`` of the account the client acts as."""
        return self._call("GET", "session")

    def users(self) -> list[dict[str, Any]]:
        return self._call("GET", "users")

    def add_user(self, name: str, role: str, *, password: str | None = None) -> dict[str, Any]:
        """Create an account (owners only); the result's ``password`` is the one made for it when none was given."""
        return self._call("POST", "users", body={"name": name, "role": role, "password": password})

    def issue_token(self, name: str, purpose: str = "api") -> str:
        """Issue an API token for the account ``name`` (your own, or anyone's for an owner) and return it."""
        return self._call("POST", "users", name, "tokens", body={"name": purpose})["token"]

    def health(self) -> dict[str, str]:
        return self._call("GET", "health")

    # Transport

    def _call(self, method: str, *path: str | int, query: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None, raw: bool = False) -> Any:
        """Send one request and return its JSON (or its bytes with ``raw``), raising the error it carries."""
        url = self._url(path, query)
        request = urllib.request.Request(url, method=method, headers={"Accept": "application/json"})
        if self.token is not None:
            request.add_header("Authorization", f"Bearer {self.token}")
        if body is not None:
            request.data = json.dumps({k: v for k, v in body.items() if v is not None}).encode("utf-8")
            request.add_header("Content-Type", "application/json")

        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                content = response.read()
        except urllib.error.HTTPError as error:
            raise _error_of(error) from None
        except urllib.error.URLError as error:
            raise ConnectionError(f"cannot reach the defectlab API at {self.base_url} ({error.reason}); "
                                  "start it with 'defectlab ui' or check the address") from error
        return content if raw else json.loads(content)

    def _url(self, path: tuple[str | int, ...], query: dict[str, Any] | None) -> str:
        # Project, task and class names may contain spaces and other characters a URL path cannot carry as is.
        url = self.base_url + "/" + "/".join(urllib.parse.quote(str(part), safe="") for part in path)
        pairs = [(key, _query_value(value)) for key, value in (query or {}).items() if value is not None]
        flat = [(key, item) for key, value in pairs for item in (value if isinstance(value, list) else [value])]
        return f"{url}?{urllib.parse.urlencode(flat)}" if flat else url


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _error_of(error: urllib.error.HTTPError) -> DefectlabError:
    """Return the ``DefectlabError`` for an error response, with the server's message."""
    content = error.read()
    try:
        message = json.loads(content)["error"]
    except (ValueError, KeyError, TypeError):
        message = content.decode("utf-8", "replace").strip() or str(error.reason)
    kind = _ERRORS.get(error.code)
    if kind is None:
        return DefectlabError(f"HTTP {error.code}: {message}")
    return kind(message)
