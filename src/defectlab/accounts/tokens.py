"""Tokens: secrets that act for a user, for a browser's sign-in session or for a script.

A secret is shown once, when it is issued. The workspace keeps only its
SHA-256 digest, so a copy of the database does not give anyone access.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select

from defectlab.accounts.users import Account, require_user
from defectlab.errors import InvalidInputError, NotFoundError
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Token

__all__ = ["KINDS", "SESSION_HOURS", "end_session", "issue_token", "list_tokens", "revoke_token", "user_of_token"]

KINDS = ("session", "api")
SESSION_HOURS = 12
"""A sign-in session ends this many hours after it began; API tokens last until revoked."""

_PREFIX = "dl_"
_USE_INTERVAL = timedelta(minutes=1)
"""``used_at`` is written at most this often per token, so reading pages does not write on every request."""


def issue_token(workspace: Workspace, user_name: str, *, kind: str = "api", name: str = "") -> str:
    """Issue a secret for ``user_name`` and return it; this is the only time it can be read.

    Raises:
        NotFoundError: No account has this name.
        InvalidInputError: ``kind`` is not ``session`` or ``api``.
    """
    if kind not in KINDS:
        raise InvalidInputError(f"token kind {kind!r} does not exist; choose one of {', '.join(KINDS)}")
    secret = _PREFIX + secrets.token_urlsafe(32)
    expires = datetime.now(timezone.utc) + timedelta(hours=SESSION_HOURS) if kind == "session" else None
    with workspace.session() as session:
        user = require_user(session, user_name)
        session.add(Token(user_id=user.id, kind=kind, name=name[:100] or kind, digest=_digest(secret),
                          expires_at=expires))
    return secret


def user_of_token(workspace: Workspace, secret: str) -> Account | None:
    """Return the account that ``secret`` stands for, or ``None`` for an unknown, revoked or expired secret."""
    if not secret.startswith(_PREFIX):
        return None
    now = datetime.now(timezone.utc)
    with workspace.session() as session:
        token = session.scalar(select(Token).where(Token.digest == _digest(secret)))
        if token is None or (token.expires_at is not None and _utc(token.expires_at) <= now):
            return None
        if token.used_at is None or now - _utc(token.used_at) > _USE_INTERVAL:
            token.used_at = now
        return Account(token.user.name, token.user.role)


def list_tokens(workspace: Workspace, user_name: str) -> list[dict[str, Any]]:
    """Return the user's API tokens (never their secrets): ``id``, ``name``, ``created_at`` and ``used_at``."""
    with workspace.session() as session:
        user = require_user(session, user_name)
        return [{"id": token.id, "name": token.name, "created_at": _utc(token.created_at).isoformat(),
                 "used_at": _utc(token.used_at).isoformat() if token.used_at else None}
                for token in user.tokens if token.kind == "api"]


def revoke_token(workspace: Workspace, user_name: str, token_id: int) -> None:
    """Revoke one of the user's API tokens.

    Raises:
        NotFoundError: The user has no API token with this id.
    """
    with workspace.session() as session:
        user = require_user(session, user_name)
        token = next((token for token in user.tokens if token.id == token_id and token.kind == "api"), None)
        if token is None:
            raise NotFoundError(f"{user_name!r} has no API token {token_id}; GET /api/users/{user_name}/tokens "
                                "lists them")
        session.delete(token)


def end_session(workspace: Workspace, secret: str) -> None:
    """Revoke the token of ``secret`` (signing out); an unknown secret is left alone."""
    with workspace.session() as session:
        token = session.scalar(select(Token).where(Token.digest == _digest(secret)))
        if token is not None:
            session.delete(token)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _utc(moment: datetime) -> datetime:
    """SQLite returns datetimes without a zone; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
