"""The ``defectlab`` command line: the inspection loop from a terminal.

Errors go to stderr with a non-zero exit status: 2 for invalid input, 3 for
something not found, 4 for a conflict, 5 for data that cannot train, 1 for
anything else.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from defectlab.errors import ConflictError, DefectlabError, InvalidInputError, NotFoundError, TrainingError

app = typer.Typer(help="Automated visual inspection: import, train, evaluate and predict.", no_args_is_help=True)
project_app = typer.Typer(help="Create, list and delete projects.", no_args_is_help=True)
app.add_typer(project_app, name="project")

_EXIT_CODES = {InvalidInputError: 2, NotFoundError: 3, ConflictError: 4, TrainingError: 5}
_state: dict[str, Optional[Path]] = {"workspace": None}


def flag(*names: str, help: str) -> Any:
    """Declare a boolean option that help shows as a bare flag.

    Typer 0.29 prints the type (``<bool>``) after every option in its rich
    help unless the metavar is set, and an empty metavar prints nothing.
    """
    return typer.Option(*names, help=help, metavar="")


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, OSError, ValueError):
        return False


def confirm(question: str, *, refusal: str) -> None:
    """Ask a yes/no question, or fail when no terminal is attached, instead of reading an empty answer.

    Raises:
        InvalidInputError: stdin is not a terminal. The message is ``refusal``,
            which should tell the person to rerun with ``--yes``.
        typer.Abort: The person declined the confirmation.
    """
    if not stdin_is_terminal():
        raise InvalidInputError(refusal)
    typer.confirm(question, abort=True)


@app.callback()
def _main(
    workspace: Annotated[Optional[Path], typer.Option(
        help="Workspace folder (default: DEFECTLAB_HOME, else the user data folder).")] = None,
    verbose: Annotated[bool, flag("--verbose", "-v", help="Log each step to stderr.")] = False,
) -> None:
    _state["workspace"] = workspace
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def open_workspace():
    from defectlab.workspace import Workspace

    return Workspace.open(_state["workspace"])


def echo_json(value: object) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False))


def main() -> None:
    """Run the CLI, turning defectlab errors into a message and an exit status."""
    from defectlab import commands  # noqa: F401 - registers the commands on ``app``

    try:
        app()
    except DefectlabError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(next((code for kind, code in _EXIT_CODES.items() if isinstance(error, kind)), 1))
