"""CLI commands for the accounts that sign in to the server: add them, list them, change roles, issue tokens."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from defectlab.cli import app, echo_json, flag, open_workspace

users_app = typer.Typer(help="Accounts of the server ('defectlab ui'): names, roles, passwords and API tokens.",
                        no_args_is_help=True)
app.add_typer(users_app, name="users")

NameArgument = Annotated[str, typer.Argument(help="The account's name.")]
PasswordOption = Annotated[Optional[str], typer.Option(
    help="At least 8 characters (default: a random one, printed once).")]


@users_app.command("add")
def add_user(
    name: NameArgument,
    role: Annotated[str, typer.Option(help="viewer, labeler, reviewer or owner.")] = "labeler",
    password: PasswordOption = None,
) -> None:
    """Create an account; prints its password when one was made."""
    from defectlab.accounts import create_user

    account, made = create_user(open_workspace(), name, role, created_by="command line", password=password)
    typer.echo(f"created {account.role} {account.name!r}" + (f" with password {made} (shown only now)" if made else ""))


@users_app.command("list")
def list_users(as_json: Annotated[bool, flag("--json", help="Print JSON.")] = False) -> None:
    """List the accounts with their roles and number of API tokens."""
    from defectlab.accounts import describe_users

    users = describe_users(open_workspace())
    if as_json:
        echo_json(users)
        return
    for user in users:
        typer.echo(f"{user['name']}\t{user['role']}\t{user['tokens']} API tokens\tcreated by {user['created_by']}")


@users_app.command("set")
def change_user(
    name: NameArgument,
    role: Annotated[Optional[str], typer.Option(help="The new role.")] = None,
    password: Annotated[Optional[str], typer.Option(help="The new password (at least 8 characters).")] = None,
) -> None:
    """Change an account's role or password; a new password signs the account out of the browser."""
    from defectlab.accounts import update_user

    account = update_user(open_workspace(), name, role=role, password=password)
    typer.echo(f"{account.name!r} has the role {account.role}" + (" and a new password" if password else ""))


@users_app.command("token")
def issue_api_token(
    name: NameArgument,
    purpose: Annotated[str, typer.Option("--name", help="What the token is for, such as the script's name.")] = "api",
) -> None:
    """Issue an API token for scripts (send it as 'Authorization: Bearer TOKEN'); it is printed only now."""
    from defectlab.accounts import issue_token

    typer.echo(issue_token(open_workspace(), name, kind="api", name=purpose))
