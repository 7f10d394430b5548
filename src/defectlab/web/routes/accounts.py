"""Routes for accounts: signing in and out, users and their roles, API tokens, and the audit log.

``POST /api/session`` is the only route besides health that needs no account.
An owner manages every account; anyone may change their own password and
issue or revoke their own API tokens.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from defectlab.accounts import (
    Account,
    create_user,
    describe_users,
    end_session,
    has_role,
    issue_token,
    list_tokens,
    revoke_token,
    sign_in,
    update_user,
)
from defectlab.accounts.tokens import SESSION_HOURS
from defectlab.errors import ForbiddenError
from defectlab.web.access import SESSION_COOKIE, Owner, Reviewer, Signed, csrf_of
from defectlab.web.bodies import NewToken, NewUser, SignIn, UserChange
from defectlab.web.routes import WorkspaceParameter, error_responses
from defectlab.workspace.schema import AuditEntry

__all__ = ["open_router", "router"]

open_router = APIRouter(tags=["accounts"], responses=error_responses(400, 401))
"""Routes that need no account: signing in."""

router = APIRouter(tags=["accounts"], responses=error_responses(400, 401, 403, 404))


@open_router.post("/session", summary="Sign in with a name and password; sets the session cookie")
def start_session(body: SignIn, request: Request, response: Response, workspace: WorkspaceParameter) -> dict[str, Any]:
    """Return `name`, `role` and `csrf`: the value of the `X-CSRF-Token` header that every change made with the
    session must send. The cookie is HttpOnly and ends after 12 hours or when signing out."""
    account = sign_in(workspace, body.name, body.password)
    secret = issue_token(workspace, account.name, kind="session", name=request.headers.get("user-agent", "browser"))
    response.set_cookie(SESSION_COOKIE, secret, max_age=SESSION_HOURS * 3600, httponly=True, samesite="strict",
                        path="/")
    request.state.account = account
    return {"name": account.name, "role": account.role, "csrf": csrf_of(secret)}


@router.get("/session", summary="Who is signed in")
def read_session(request: Request, account: Signed) -> dict[str, Any]:
    """Return `name`, `role` and, for a browser session, `csrf` (see POST /api/session)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    return {"name": account.name, "role": account.role, "csrf": csrf_of(cookie) if cookie else None}


@router.delete("/session", summary="Sign out: end the browser session")
def stop_session(request: Request, response: Response, workspace: WorkspaceParameter,
                 account: Signed) -> dict[str, str]:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        end_session(workspace, cookie)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"signed_out": account.name}


@router.get("/users", summary="List the accounts with their roles")
def list_users(workspace: WorkspaceParameter, account: Reviewer) -> list[dict[str, Any]]:
    """Return `name`, `role`, `created_by`, `created_at` and the number of API `tokens` of each account."""
    return describe_users(workspace)


@router.post("/users", status_code=201, summary="Create an account", responses=error_responses(409))
def add_user(body: NewUser, workspace: WorkspaceParameter, account: Owner) -> dict[str, Any]:
    """Return `name`, `role` and `password`: the password made for the account when none was sent (shown only
    this once), or null."""
    user, made = create_user(workspace, body.name, body.role, created_by=account.name, password=body.password)
    return {"name": user.name, "role": user.role, "password": made}


@router.patch("/users/{name}", summary="Change an account's role or password", responses=error_responses(409))
def change_user(name: str, body: UserChange, workspace: WorkspaceParameter, account: Signed) -> dict[str, str]:
    """Change an account's role or password. An owner may change anyone's, and others only their own password."""
    if body.role is not None:
        _require_owner(account, "change a role")
    if name != account.name:
        _require_owner(account, f"change {name!r}'s account")
    user = update_user(workspace, name, role=body.role, password=body.password)
    return {"name": user.name, "role": user.role}


@router.get("/users/{name}/tokens", summary="List an account's API tokens")
def read_tokens(name: str, workspace: WorkspaceParameter, account: Signed) -> list[dict[str, Any]]:
    """Return each token's `id`, `name`, `created_at` and `used_at`; the secrets are never shown again."""
    _require_self_or_owner(account, name)
    return list_tokens(workspace, name)


@router.post("/users/{name}/tokens", status_code=201, summary="Issue an API token for scripts")
def add_token(name: str, workspace: WorkspaceParameter, account: Signed,
              body: NewToken | None = None) -> dict[str, str]:
    """Return `token`, shown only this once; send it as `Authorization: Bearer TOKEN`. It acts with the
    account's role until revoked."""
    _require_self_or_owner(account, name)
    return {"token": issue_token(workspace, name, kind="api", name=(body or NewToken()).name)}


@router.delete("/users/{name}/tokens/{token_id}", summary="Revoke an API token")
def remove_token(name: str, token_id: int, workspace: WorkspaceParameter, account: Signed) -> dict[str, int]:
    _require_self_or_owner(account, name)
    revoke_token(workspace, name, token_id)
    return {"revoked": token_id}


@router.get("/audit", summary="Who changed what and when, newest first")
def read_audit(
    workspace: WorkspaceParameter,
    account: Owner,
    user: Annotated[str | None, Query(description="Only this account's requests.")] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 200,
) -> list[dict[str, Any]]:
    """Return each request that tried to change something: `user`, `method`, `path`, `status` and `at`."""
    with workspace.session() as session:
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if user is not None:
            query = query.where(AuditEntry.user == user)
        return [{"user": entry.user, "method": entry.method, "path": entry.path, "status": entry.status,
                 "at": entry.created_at.isoformat()} for entry in session.scalars(query)]


def _require_owner(account: Account, action: str) -> None:
    if not has_role(account, "owner"):
        raise ForbiddenError(f"only an owner may {action}; {account.name!r} is a {account.role}")


def _require_self_or_owner(account: Account, name: str) -> None:
    if name != account.name:
        _require_owner(account, f"manage {name!r}'s tokens")
