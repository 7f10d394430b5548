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
from defectlab.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError, SignInError

SOURCE = Path(__file__).resolve().parents[2] / "src"
OWNER_PASSWORD = "line 4 owner"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(workspace, parts, tmp_path: Path):
    """Run ``defectlab ui`` on a free loopback port with the first owner's password set; yield its base URL and
    the path of its log."""
    port = free_port()
    environment = {**os.environ, "PYTHONPATH": f"{SOURCE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    log = tmp_path / "ui.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "defectlab", "--workspace", str(workspace.root), "ui", "--port", str(port),
             "--owner-password", OWNER_PASSWORD], env=environment, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(Client(url), process, log)
        yield url, log
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


def owner_token(workspace) -> str:
    """Issue an API token of the first owner with the CLI, as an administrator on the server's machine would."""
    from defectlab import commands  # noqa: F401 - registers the commands
    from defectlab.cli import app

    result = CliRunner().invoke(app, ["--workspace", str(workspace.root), "users", "token", "owner"])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_client_drives_real_server(server, workspace, parts, tmp_path: Path) -> None:
    url, log = server
    assert "created the owner account: name 'owner', password the one you set" in log.read_text()
    with pytest.raises(SignInError, match="^sign in first: POST /api/session"):
        Client(url).projects()
    owner = Client(url, token=owner_token(workspace))
    assert owner.whoami() == {"name": "owner", "role": "owner", "csrf": None}
    owner.add_user("ana", "reviewer", password="ana's password")
    made = owner.add_user("ben", "labeler")["password"]
    assert len(made) >= 8
    ana, ben = Client(url, token=owner.issue_token("ana")), Client(url, token=owner.issue_token("ben"))

    assert [project["name"] for project in ana.projects()] == ["parts"]
    assert ana.image_file("parts", parts["ok/0.png"]) == (tmp_path / "source" / "ok" / "0.png").read_bytes()
    image = ana.image("parts", parts["ok/0.png"])
    changed = ana.set_image_class("parts", image["id"], "dent", version=image["version"])
    assert changed["label"] == "dent"
    with pytest.raises(ConflictError, match="someone changed it since"):
        ben.set_image_class("parts", image["id"], "ok", version=image["version"])
    with pytest.raises(ForbiddenError, match="labeler is 'ana' but you are signed in as 'ben'"):
        ben.set_image_class("parts", image["id"], "ok", labeler="ana", version=changed["version"])
    with pytest.raises(NotFoundError, match="project 'no such' does not exist"):
        ana.images("no such")
    with pytest.raises(InvalidInputError, match="needs 2 to 5 labelers; 1 given"):
        ana.create_task("parts", "round-1", ["ana"])
    with pytest.raises(ForbiddenError, match="needs the role reviewer or higher, and 'ben' is a labeler"):
        ben.create_task("parts", "round-1", ["ana", "ben"])

    ana.create_task("parts", "line 2/night", ["ana", "ben"], image_ids=[image["id"]])
    assert ana.next_image("parts", "line 2/night")["image_id"] == image["id"]
    ana.annotate("parts", "line 2/night", image["id"], regions=[{"class": "dent", "box": [1, 1, 6, 6]}])
    assert ana.next_image("parts", "line 2/night") is None
    assert ana.annotations("parts", "line 2/night", image["id"], "ben") == []
    with pytest.raises(ForbiddenError, match="labeling tasks are blind"):
        ben.annotations("parts", "line 2/night", image["id"], "ana")
    entry = ana.update_book_entry("parts", "dent", rule={"min_length": 3})
    assert ana.book_entry("parts", "dent", version=entry["version"])["rule"] == {"min_length": 3.0, "unit": "px"}
    assert ana.book_history("parts", "dent")[-1]["author"] == "ana"

    job = ana.start_check("parts", labels=False)
    finished = ana.wait(job["id"], timeout=300, poll_interval=0.2)
    assert (finished["status"], finished["started_by"]) == ("succeeded", "ana")
    assert finished["result"]["images"] == 12
    assert [row["id"] for row in ana.jobs("parts")] == [job["id"]]
    assert ana.models("parts") == []

    # The pages hold no data, so they need no account; their API calls do.
    with urllib.request.urlopen(f"{url}/projects/parts", timeout=30) as response:
        assert response.status == 200
        assert b'<script type="module" src="/static/browser.js">' in response.read()


def test_connection_refused_names_address() -> None:
    with pytest.raises(ConnectionError, match=r"cannot reach the defectlab API at http://127.0.0.1:\d+/api"):
        Client(f"http://127.0.0.1:{free_port()}", timeout=5).projects()
