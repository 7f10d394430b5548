"""A small classification project behind the REST API, reached through FastAPI's TestClient.

``api`` acts as ``ana``, an owner, through an API token; ``person(NAME, ROLE)``
creates another account and returns the headers that act as it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from defectlab.accounts import create_user, issue_token
from defectlab.data.importer import import_path
from defectlab.data.labels import list_images
from defectlab.web import create_app


def write_class_images(root: Path, counts: dict[str, int], size: int = 16) -> None:
    """Write ``counts[name]`` small grayscale PNGs of seeded noise into one folder per class name."""
    generator = np.random.default_rng(7)
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for number in range(count):
            pixels = generator.integers(0, 256, size=(size, size), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{number}.png")


@pytest.fixture
def parts(workspace, tmp_path: Path) -> dict[str, int]:
    """Create project ``parts`` (classes ok, dent, scratch) with 4 labeled images each; return ids by path."""
    write_class_images(tmp_path / "source", {"ok": 4, "dent": 4, "scratch": 4})
    workspace.create_project("parts", "classification", ["dent", "scratch"])
    import_path(workspace, "parts", tmp_path / "source")
    return {row["path"]: row["id"] for row in list_images(workspace, "parts")}


PASSWORD = "correct horse"


@pytest.fixture
def password() -> str:
    """The password of every account that ``person`` creates."""
    return PASSWORD


@pytest.fixture
def person(workspace) -> Callable[..., dict[str, str]]:
    """Return ``headers(name, role="owner")``: create the account once and return headers with an API token of it."""
    tokens: dict[str, str] = {}

    def headers(name: str, role: str = "owner") -> dict[str, str]:
        if name not in tokens:
            create_user(workspace, name, role, created_by="test", password=PASSWORD)
            tokens[name] = issue_token(workspace, name)
        return {"Authorization": f"Bearer {tokens[name]}"}

    return headers


@pytest.fixture
def api(workspace, person):
    with TestClient(create_app(workspace), headers=person("ana")) as client:
        yield client


@pytest.fixture
def ended_job(api) -> Callable[..., dict]:
    """Return ``wait(job_id, seconds=300.0)``: poll a job until it is no longer running, and return it."""

    def wait(job_id: int, seconds: float = 300.0) -> dict:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            job = api.get(f"/api/jobs/{job_id}").json()
            if job["status"] != "running":
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} still runs after {seconds} s")

    return wait
