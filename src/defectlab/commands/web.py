"""The command that serves the workspace's pages and REST API over HTTP."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from defectlab.cli import app, open_workspace


@app.command("ui")
def serve_workspace(
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 lets other machines connect.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    owner_password: Annotated[Optional[str], typer.Option(
        help="Password of the first owner account, created when the workspace has no account yet (default: the "
             "DEFECTLAB_OWNER_PASSWORD environment variable, else a random one printed once).")] = None,
) -> None:
    """Serve the workspace over HTTP: the browser pages at /, the REST API under /api (schema /api/openapi.json).

    Everyone signs in; on the first start an owner account named 'owner' is created and its password printed.
    """
    import uvicorn

    from defectlab.accounts import create_first_owner
    from defectlab.accounts.users import FIRST_OWNER
    from defectlab.web import create_app

    workspace = open_workspace()
    chosen = owner_password or os.environ.get("DEFECTLAB_OWNER_PASSWORD") or None
    password = create_first_owner(workspace, chosen)
    if password is not None:
        shown = "the one you set" if chosen else password
        typer.echo(f"created the owner account: name {FIRST_OWNER!r}, password {shown}. It is shown only now; "
                   "add accounts for the others with 'defectlab users add NAME --role ROLE'", err=True)
    application = create_app(workspace)
    typer.echo(f"serving workspace {workspace.root}: open http://{host}:{port}/ in a browser and sign in; the REST "
               "API is under /api (OpenAPI schema at /api/openapi.json); stop with Ctrl+C", err=True)
    uvicorn.run(application, host=host, port=port, log_level="warning")
