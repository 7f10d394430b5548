"""Accounts in the library and the CLI: stored passwords, the first owner, sessions that end, tokens."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from defectlab.accounts import (
    create_first_owner,
    create_user,
    end_session,
    issue_token,
    sign_in,
    update_user,
    user_of_token,
)
from defectlab.accounts.passwords import check_password
from defectlab.errors import InvalidInputError, NotFoundError, SignInError
from defectlab.workspace.schema import Token, User


def test_password_stored_only_as_salted_hash(workspace) -> None:
    create_user(workspace, "ana", "labeler", created_by="test", password="plate line 3")
    create_user(workspace, "ben", "labeler", created_by="test", password="plate line 3")
    with workspace.session() as session:
        stored = dict(session.execute(select(User.name, User.password_hash)).all())
    assert "plate line 3" not in str(stored)
    assert stored["ana"] != stored["ben"]
    assert check_password("plate line 3", stored["ana"])
    assert not check_password("plate line 4", stored["ana"])
    assert sign_in(workspace, "ana", "plate line 3").role == "labeler"
    for name, password in (("ana", "plate line 4"), ("nobody", "plate line 3")):
        with pytest.raises(SignInError, match="^wrong name or password"):
            sign_in(workspace, name, password)


def test_first_owner_created_once(workspace) -> None:
    made = create_first_owner(workspace)
    assert len(made) == 16
    assert sign_in(workspace, "owner", made).role == "owner"
    assert create_first_owner(workspace, "another password") is None


def test_token_secret_stored_as_digest_and_ends(workspace) -> None:
    create_user(workspace, "ana", "reviewer", created_by="test", password="plate line 3")
    secret = issue_token(workspace, "ana", kind="session")
    with workspace.session() as session:
        assert secret not in str(session.execute(select(Token.digest)).all())
    assert user_of_token(workspace, secret).name == "ana"
    assert user_of_token(workspace, secret + "x") is None

    with workspace.session() as session:
        session.execute(update(Token).values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    assert user_of_token(workspace, secret) is None

    api, session_secret = issue_token(workspace, "ana"), issue_token(workspace, "ana", kind="session")
    update_user(workspace, "ana", password="plate line 9")
    assert (user_of_token(workspace, api).name, user_of_token(workspace, session_secret)) == ("ana", None)
    end_session(workspace, api)
    assert user_of_token(workspace, api) is None


def test_bad_account_input_names_field(workspace) -> None:
    with pytest.raises(InvalidInputError, match="account name '../x' is not allowed"):
        create_user(workspace, "../x", "viewer", created_by="test")
    with pytest.raises(NotFoundError, match="no account is named 'ghost'"):
        issue_token(workspace, "ghost")
    with pytest.raises(InvalidInputError, match="token kind 'forever' does not exist"):
        issue_token(workspace, "owner", kind="forever")


def test_users_commands(workspace) -> None:
    from defectlab import commands  # noqa: F401 - registers the commands
    from defectlab.cli import app

    def invoke(*args: str):
        return CliRunner().invoke(app, ["--workspace", str(workspace.root), "users", *args])

    added = invoke("add", "ana", "--role", "reviewer")
    assert added.exit_code == 0, added.output
    password = added.output.split("with password ")[1].split()[0]
    assert sign_in(workspace, "ana", password).role == "reviewer"
    assert invoke("set", "ana", "--role", "owner").output == "'ana' has the role owner\n"
    token = invoke("token", "ana", "--name", "export").output.strip()
    assert user_of_token(workspace, token).role == "owner"
    listed = invoke("list").output
    assert listed == "ana\towner\t1 API tokens\tcreated by command line\n"
    refused = invoke("add", "ben", "--role", "admin")
    assert isinstance(refused.exception, InvalidInputError)
    assert str(refused.exception).startswith("role 'admin' does not exist")
