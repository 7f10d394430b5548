"""Routers of the REST API, one module per part of the inspection loop; routes leave the work to library functions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from defectlab.web.bodies import ErrorBody
from defectlab.workspace import Workspace

__all__ = ["WorkspaceParameter", "error_responses", "workspace_of"]

_MEANINGS = {
    400: "The request is not valid; the message names the field or value and what is allowed.",
    401: "Not signed in, or the API token or session is wrong, revoked or expired.",
    403: "The account's role does not allow this, or a browser change came without its X-CSRF-Token header.",
    404: "The project, image, task, class or job does not exist.",
    409: "The change was based on an old version, or the name exists already; read again and repeat.",
}


def workspace_of(request: Request) -> Workspace:
    """Return the workspace the application serves."""
    return request.app.state.workspace


WorkspaceParameter = Annotated[Workspace, Depends(workspace_of)]


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Describe error responses for OpenAPI: each has an ``ErrorBody`` and a meaning."""
    return {status: {"model": ErrorBody, "description": _MEANINGS[status]} for status in statuses}
