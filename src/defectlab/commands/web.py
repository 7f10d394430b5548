"""The command that serves the workspace's REST API over HTTP."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from defectlab.cli import app, open_workspace
from defectlab.errors import InvalidInputError


@app.command("ui")
def serve_workspace(
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs an API key.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    api_key: Annotated[Optional[str], typer.Option(
        help="Key clients send in X-API-Key (default: the DEFECTLAB_API_KEY environment variable).")] = None,
) -> None:
    """Serve the workspace over HTTP: the browser pages at /, the REST API under /api (schema /api/openapi.json)."""
    import uvicorn

    from defectlab.deployment.server import LOOPBACK_HOSTS
    from defectlab.web import create_app

    key = api_key or os.environ.get("DEFECTLAB_API_KEY") or None
    if host not in LOOPBACK_HOSTS and key is None:
        raise InvalidInputError(
            f"--host {host} lets other machines connect, so an API key is required; "
            "pass --api-key KEY or set DEFECTLAB_API_KEY"
        )
    workspace = open_workspace()
    application = create_app(workspace, api_key=key)
    typer.echo(f"serving workspace {workspace.root}: open http://{host}:{port}/ in a browser; the REST API is "
               "under /api (OpenAPI schema at /api/openapi.json); stop with Ctrl+C", err=True)
    uvicorn.run(application, host=host, port=port, log_level="warning")
