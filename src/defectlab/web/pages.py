"""The browser pages: HTML shells and ES modules that draw each page from the REST API.

Pages hold no data of their own. Each module reads the page's address, calls
``/api`` and builds the page with DOM calls that set text, never HTML, so a
class name or definition a person typed is shown as typed and never run.
Nothing is built at install time, and the pages load nothing from another
address, so they work on a machine with no internet connection.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC", "add_pages", "router"]

STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    # no-cache makes the browser ask again after an upgrade, and the unchanged file costs a 304.
    return FileResponse(STATIC / name, media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/signin")
def signin_page() -> FileResponse:
    return _page("signin.html")


@router.get("/")
def projects_page() -> FileResponse:
    return _page("projects.html")


@router.get("/projects/{project}")
def browser_page(project: str) -> FileResponse:
    return _page("browser.html")


@router.get("/projects/{project}/images/{image_id}")
def labeling_page(project: str, image_id: int) -> FileResponse:
    return _page("label.html")


@router.get("/projects/{project}/train")
def training_page(project: str) -> FileResponse:
    return _page("train.html")


@router.get("/projects/{project}/models/{model_id}")
def report_page(project: str, model_id: int) -> FileResponse:
    return _page("report.html")


@router.get("/projects/{project}/book")
def book_page(project: str) -> FileResponse:
    return _page("book.html")


@router.get("/projects/{project}/review")
def review_page(project: str) -> FileResponse:
    return _page("review.html")


def add_pages(app: FastAPI) -> None:
    """Serve the pages at ``/`` and ``/projects/...`` and their scripts and styles under ``/static``."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
