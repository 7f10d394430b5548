"""``defectlab ui`` serving a workspace on loopback, driven by ``defectlab.Client``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from defectlab import Client
from defectlab.errors import ConflictError, DefectlabError, InvalidInputError, NotFoundError

SOURCE = Path(__file__).resolve().parents[2] / "src"
KEY = "s3cret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(workspace, parts, tmp_path: Path):
    """Run ``defectlab ui`` with an API key on a free loopback port; yield its base URL."""
    port = free_port()
    environment = {**os.environ, "PYTHONPATH": f"{SOURCE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    log = tmp_path / "ui.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "defectlab", "--workspace", str(workspace.root), "ui", "--port", str(port),
             "--api-key", KEY], env=environment, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(Client(url), process, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_until_up(client: Client, process: subprocess.Popen, log: Path, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"defectlab ui exited with {process.returncode}: {log.read_text()}")
        try:
            client.health()
            return
        except ConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"defectlab ui did not answer within {seconds} s")


def test_client_drives_real_server(server, parts, tmp_path: Path) -> None:
    with pytest.raises(DefectlabError, match="HTTP 401: this server needs an API key"):
        Client(server).projects()
    client = Client(server, api_key=KEY)

    assert [project["name"] for project in client.projects()] == ["parts"]
    assert client.image_file("parts", parts["ok/0.png"]) == (tmp_path / "source" / "ok" / "0.png").read_bytes()
    image = client.image("parts", parts["ok/0.png"])
    changed = client.set_image_class("parts", image["id"], "dent", labeler="ana", version=image["version"])
    assert changed["label"] == "dent"
    with pytest.raises(ConflictError, match="someone changed it since"):
        client.set_image_class("parts", image["id"], "ok", labeler="ana", version=image["version"])
    with pytest.raises(NotFoundError, match="project 'no such' does not exist"):
        client.images("no such")
    with pytest.raises(InvalidInputError, match="body.created_by: String should have at least 1 character"):
        client.create_task("parts", "round-1", ["ana", "ben"], created_by="")

    client.create_task("parts", "line 2/night", ["ana", "ben"], created_by="lead", image_ids=[image["id"]])
    assert client.next_image("parts", "line 2/night", "ana")["image_id"] == image["id"]
    client.annotate("parts", "line 2/night", image["id"], "ana", regions=[{"class": "dent", "box": [1, 1, 6, 6]}])
    assert client.next_image("parts", "line 2/night", "ana") is None
    assert client.annotations("parts", "line 2/night", image["id"], "ben") == []
    entry = client.update_book_entry("parts", "dent", author="ana", rule={"min_length": 3})
    assert client.book_entry("parts", "dent", version=entry["version"])["rule"] == {"min_length": 3.0, "unit": "px"}

    job = client.start_check("parts", labels=False)
    finished = client.wait(job["id"], timeout=300, poll_interval=0.2)
    assert finished["status"] == "succeeded"
    assert finished["result"]["images"] == 12
    assert [row["id"] for row in client.jobs("parts")] == [job["id"]]
    assert client.models("parts") == []

    # The pages hold no data, so they need no key; their API calls do.
    with urllib.request.urlopen(f"{server}/projects/parts", timeout=30) as response:
        assert response.status == 200
        assert b'<script type="module" src="/static/browser.js">' in response.read()


def test_connection_refused_names_address() -> None:
    with pytest.raises(ConnectionError, match=r"cannot reach the defectlab API at http://127.0.0.1:\d+/api"):
        Client(f"http://127.0.0.1:{free_port()}", timeout=5).projects()


def test_ui_refuses_other_host_without_key(tmp_path: Path, monkeypatch) -> None:
    from defectlab import commands  # noqa: F401 - registers the commands
    from defectlab.cli import app

    monkeypatch.delenv("DEFECTLAB_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["--workspace", str(tmp_path / "ws"), "ui", "--host", "0.0.0.0"])
    assert isinstance(result.exception, InvalidInputError)
    assert str(result.exception) == ("--host 0.0.0.0 lets other machines connect, so an API key is required; "
                                     "pass --api-key KEY or set DEFECTLAB_API_KEY")
