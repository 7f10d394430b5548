"""The workspace's REST API: a FastAPI application with every route under ``/api``.

Routes take and return JSON (except an image's file) and leave the work to
the library functions, so a script can do what a person does with the CLI. Every
error has the body ``{"error": MESSAGE}`` and the HTTP status of its
``DefectlabError`` class: 400 invalid, 401 not signed in (or a wrong token),
403 a role that does not allow the change, 404 not found, 409 conflict, 422
data that cannot train. Every route but sign-in and health needs an account
(see ``defectlab.web.access``). The OpenAPI schema is at
``/api/openapi.json``. The interactive documentation pages are left out
because they load their scripts from a CDN, which an offline machine cannot
reach.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from defectlab import __version__
from defectlab.deployment.server import _BodyLimit
from defectlab.errors import DefectlabError
from defectlab.web import pages
from defectlab.web.access import record_changes, signed_in
from defectlab.web.routes import (
    accounts,
    book,
    browse,
    images,
    jobs,
    labels,
    pictures,
    projects,
    proposals,
    tasks,
    uploads,
)
from defectlab.web.uploads import max_upload_bytes
from defectlab.workspace import Workspace

__all__ = ["API_PREFIX", "MAX_REQUEST_BYTES", "create_app"]

logger = logging.getLogger(__name__)

API_PREFIX = "/api"

MAX_REQUEST_BYTES = 16 << 20
"""Largest request body in bytes; bodies are JSON, and even labels with many long polygons stay far below it."""

# The browser's routes come before the images routes, whose '/images/{image_id}' would otherwise take 'bulk'.
_ROUTERS = (accounts.router, projects.router, browse.router, images.router, labels.router, pictures.router, tasks.router,
            proposals.router, book.router, jobs.router, uploads.router)


_UPLOAD_FILES = re.compile(rf"^{API_PREFIX}/projects/[^/]+/uploads/[^/]+/files$")


class _BodyLimits:
    """ASGI middleware that limits request bodies to ``MAX_REQUEST_BYTES``, or to the upload limit for files sent
    to an upload, since one image file can be far larger than any JSON body."""

    def __init__(self, app: Any) -> None:
        self.json = _BodyLimit(app, limit=MAX_REQUEST_BYTES)
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and _UPLOAD_FILES.match(scope.get("path", "")):
            await _BodyLimit(self.app, limit=max_upload_bytes())(scope, receive, send)
        else:
            await self.json(scope, receive, send)


def create_app(workspace: Workspace) -> FastAPI:
    """Build the REST API and pages of ``workspace``; every route but sign-in and ``/api/health`` needs an account.

    A script sends an API token in ``Authorization: Bearer TOKEN``; a browser signs in with
    ``POST /api/session`` (see ``defectlab.web.access``).
    """
    app = FastAPI(title="defectlab", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=f"{API_PREFIX}/openapi.json",
                  description="The workspace's projects, images, labeling tasks, defect book and jobs. "
                              "Sign in with `POST /api/session`, or send an API token as `Authorization: Bearer "
                              'TOKEN`. Every error has the body `{"error": MESSAGE}`.')
    app.state.workspace = workspace
    app.middleware("http")(record_changes(workspace))
    app.add_middleware(_BodyLimits)
    _add_error_handlers(app)

    @app.get(f"{API_PREFIX}/health", summary="Whether the server is up; needs no account", tags=["server"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.include_router(accounts.open_router, prefix=API_PREFIX)
    for router in _ROUTERS:
        app.include_router(router, prefix=API_PREFIX, dependencies=[Depends(signed_in)])
    pages.add_pages(app)
    app.openapi = _schema_without_validation_422(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Give every error response the body ``{"error": MESSAGE}``, with invalid requests as status 400."""

    @app.exception_handler(DefectlabError)
    async def _defectlab_error(request: Request, error: DefectlabError) -> JSONResponse:
        logger.warning("%s %s failed with status %d: %s", request.method, request.url.path, error.http_status, error)
        return JSONResponse({"error": str(error)}, status_code=error.http_status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        logger.warning("%s %s failed with status %d: %s", request.method, request.url.path, error.status_code,
                       error.detail)
        return JSONResponse({"error": f"{request.method} {request.url.path}: {error.detail}"},
                            status_code=error.status_code)

    # Status 422 means data that cannot train in this API, so a request that does not match the
    # schema is a 400 like every other invalid input.
    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors())
        logger.warning("%s %s rejected: %s", request.method, request.url.path, problems)
        return JSONResponse({"error": f"invalid request: {problems}"}, status_code=400)


def _schema_without_validation_422(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """Return ``app.openapi`` with FastAPI's generated 422 responses replaced by the 400 the handlers send."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None and "400" not in responses:
                    responses["400"] = {"description": "The request is not valid.", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        return schema

    return openapi
