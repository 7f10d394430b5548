"""Fixtures of the browser tests: the server on loopback, headless Chromium from Debian, and step screenshots.

The tests drive Debian's ``chromium`` (``/usr/bin/chromium``) through
Playwright, never a browser that Playwright downloads. Where Chromium or the
``playwright`` package is missing the tests are skipped with the reason, except
in CI (``CI=true``), where ``.ci/run`` installs both, so a missing browser fails.

Screenshots of each step go to ``build/screenshots/<test module>/`` in the
repository, or under ``DEFECTLAB_SCREENSHOTS`` when that is set.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("DEFECTLAB_CHROMIUM", "/usr/bin/chromium"))
PASSWORD = "correct horse"
"""Password of the owner ``ana`` that every module's server has, and of accounts the tests add."""
REPOSITORY = Path(__file__).resolve().parents[2]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}; CI must run the browser tests, so .ci/run installs it", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """Yield headless Chromium driven by Playwright, closed after the module so it idles through no other tests."""
    if not CHROMIUM.exists():
        _unavailable(f"Chromium is not installed at {CHROMIUM} (install it with 'apt-get install chromium')")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")

    with sync_playwright() as playwright:
        # Background networking and component updates would try to reach the internet; the tests talk
        # only to the server on 127.0.0.1.
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--disable-background-networking", "--disable-component-update", "--no-first-run",
                  "--disable-dev-shm-usage"])
        yield launched
        launched.close()


class Server:
    """The workspace's application served by uvicorn in a thread, on a free loopback port."""

    def __init__(self, workspace) -> None:
        import uvicorn

        from defectlab.web import create_app

        self.workspace = workspace
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(create_app(workspace), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def start(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test server at {self.url} did not start within 20 s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """Serve a new workspace, empty but for the owner account ``ana``, for the whole test module."""
    from defectlab.accounts import create_user
    from defectlab.workspace import Workspace

    workspace = Workspace.open(tmp_path_factory.mktemp("workspace"))
    create_user(workspace, "ana", "owner", created_by="test", password=PASSWORD)
    running = Server(workspace).start()
    yield running
    running.stop()
    workspace.close()


def new_page(browser, server):
    """Return a page of a new browser context whose requests may go only to the test server, and its errors."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=server.url)
    context.route(lambda url: not url.startswith(server.url), lambda route: route.abort())
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    return opened, errors


def sign_in(page, name: str = "ana", password: str = PASSWORD) -> None:
    """Sign in on the sign-in page, as a person does, and wait until it has moved on."""
    page.goto("/signin")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/signin" not in url)


@pytest.fixture
def csrf():
    """Return ``headers(page)``: the header a change sent with the page's session must carry, for ``page.request``."""

    def headers(page) -> dict[str, str]:
        return {"X-CSRF-Token": page.request.get("/api/session").json()["csrf"]}

    return headers


@pytest.fixture
def fresh_page(browser, server):
    """Return ``open()``: a page of a new browser context, not signed in; each is closed after the test."""
    opened: list = []

    def open_page():
        page, errors = new_page(browser, server)
        opened.append((page, errors))
        return page

    yield open_page
    for page, errors in opened:
        page.context.close()
        assert not errors, f"the page raised: {errors}"


@pytest.fixture
def signer():
    """Return ``sign_in(page, name="ana", password=PASSWORD)``."""
    return sign_in


@pytest.fixture
def page(browser, server, request):
    """Yield a page signed in as the owner ``ana``, whose requests may go only to the test server."""
    opened, errors = new_page(browser, server)
    sign_in(opened)
    yield opened
    opened.context.close()
    assert not errors, f"the page raised: {errors}"


@pytest.fixture
def shoot(request):
    """Return a function that saves a full-page screenshot of a step under the module's screenshot folder."""
    root = Path(os.environ.get("DEFECTLAB_SCREENSHOTS", REPOSITORY / "build" / "screenshots"))
    folder = root / Path(request.module.__file__).stem
    folder.mkdir(parents=True, exist_ok=True)

    def save(page, step: str) -> Path:
        target = folder / f"{request.node.name}-{step}.png"
        page.screenshot(path=str(target), full_page=True)
        return target

    return save
