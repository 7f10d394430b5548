"""Users: create them with a role, sign them in by password, change their role or password."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from defectlab.accounts.passwords import check_password, hash_password, new_password
from defectlab.errors import ConflictError, InvalidInputError, NotFoundError, SignInError
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Token, User

__all__ = [
    "FIRST_OWNER",
    "MIN_PASSWORD",
    "ROLES",
    "Account",
    "create_first_owner",
    "create_user",
    "describe_users",
    "has_role",
    "require_user",
    "sign_in",
    "update_user",
]

ROLES = ("viewer", "labeler", "reviewer", "owner")
"""The roles from least to most allowed; each role may do what the roles before it may."""

FIRST_OWNER = "owner"
"""Name of the account created on the server's first start."""

MIN_PASSWORD = 8

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,99}$")


@dataclass(frozen=True)
class Account:
    """The signed-in user: name and role."""

    name: str
    role: str


def has_role(account: Account, role: str) -> bool:
    """Return whether ``account``'s role is ``role`` or one ranked above it."""
    return ROLES.index(account.role) >= ROLES.index(role)


def create_user(workspace: Workspace, name: str, role: str, *, created_by: str,
                password: str | None = None) -> tuple[Account, str | None]:
    """Create an account and return it with the password made for it (``None`` when ``password`` was given).

    Raises:
        InvalidInputError: The name, role or password is not allowed.
        ConflictError: An account with this name exists.
    """
    _check_name(name)
    _check_role(role)
    made = None if password is not None else new_password()
    chosen = password if password is not None else made
    _check_password(chosen)
    with workspace.session() as session:
        if session.scalar(select(User).where(User.name == name)) is not None:
            raise ConflictError(f"an account named {name!r} exists already; choose another name")
        session.add(User(name=name, role=role, password_hash=hash_password(chosen), created_by=created_by))
    return Account(name, role), made


def create_first_owner(workspace: Workspace, password: str | None = None) -> str | None:
    """Create the owner account ``FIRST_OWNER`` when the workspace has no account; return its password.

    Returns ``None`` when accounts exist already. The password is ``password`` or a random one.
    """
    with workspace.session() as session:
        if session.scalar(select(func.count()).select_from(User)):
            return None
    _account, made = create_user(workspace, FIRST_OWNER, "owner", created_by="first start", password=password)
    return made or password


def sign_in(workspace: Workspace, name: str, password: str) -> Account:
    """Return the account of ``name`` when ``password`` is right.

    Raises:
        SignInError: No such account, or a wrong password (the message does not say which).
    """
    with workspace.session() as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None or not check_password(password, user.password_hash):
            raise SignInError("wrong name or password; ask an owner of this server to check your account")
        return Account(user.name, user.role)


def update_user(workspace: Workspace, name: str, *, role: str | None = None,
                password: str | None = None) -> Account:
    """Change an account's role, password or both; a new password ends the account's sign-in sessions.

    Raises:
        NotFoundError: No account has this name.
        InvalidInputError: The role or password is not allowed.
        ConflictError: The change would leave the workspace without an owner.
    """
    if role is not None:
        _check_role(role)
    if password is not None:
        _check_password(password)
    with workspace.session() as session:
        user = require_user(session, name)
        if role is not None and role != "owner" and user.role == "owner":
            owners = session.scalar(select(func.count()).select_from(User).where(User.role == "owner"))
            if owners == 1:
                raise ConflictError(f"{name!r} is the only owner; make another account owner first")
        if role is not None:
            user.role = role
        if password is not None:
            user.password_hash = hash_password(password)
            user.tokens = [token for token in user.tokens if token.kind != "session"]
        return Account(user.name, user.role)


def describe_users(workspace: Workspace) -> list[dict[str, Any]]:
    """Return each account's ``name``, ``role``, ``created_by``, ``created_at`` and number of API ``tokens``."""
    with workspace.session() as session:
        tokens = dict(session.execute(select(Token.user_id, func.count()).where(Token.kind == "api")
                                      .group_by(Token.user_id)).all())
        return [{"name": user.name, "role": user.role, "created_by": user.created_by,
                 "created_at": user.created_at.isoformat(), "tokens": tokens.get(user.id, 0)}
                for user in session.scalars(select(User).order_by(User.name))]


def require_user(session: Any, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFoundError(f"no account is named {name!r}; the accounts are listed by GET /api/users")
    return user


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InvalidInputError(f"account name {name!r} is not allowed: use 1 to 100 letters, digits, spaces, "
                                "'.', '_', '@' or '-', starting with a letter or digit")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInputError(f"role {role!r} does not exist; choose one of {', '.join(ROLES)}")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInputError(f"the password has {len(password)} characters; use at least {MIN_PASSWORD}")
