"""Access control of the REST API: the account behind each request, what its role allows, and the audit log.

A request names its account in one of two ways:

* a script sends an API token in ``Authorization: Bearer TOKEN`` (or
  ``X-API-Key: TOKEN``);
* a browser sends the sign-in session cookie ``SESSION_COOKIE``, which
  ``POST /api/session`` sets. The cookie is ``HttpOnly`` and ``SameSite=Strict``,
  and a request that changes something must also send the session's
  ``X-CSRF-Token`` header, which a page of another site cannot read or send.

Every route but sign-in and health needs an account; routes that change
something need a role (see ``defectlab.accounts``), checked here on the
server. Each change, allowed or not, is written to the audit log with who
asked and when.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from defectlab.accounts import Account, has_role, user_of_token
from defectlab.errors import ForbiddenError, SignInError
from defectlab.workspace import Workspace
from defectlab.workspace.schema import AuditEntry

__all__ = [
    "CSRF_HEADER",
    "Labeler",
    "Owner",
    "Reviewer",
    "SESSION_COOKIE",
    "Signed",
    "acting",
    "csrf_of",
    "needs",
    "record_changes",
    "signed_in",
]

logger = logging.getLogger(__name__)

SESSION_COOKIE = "defectlab_session"
CSRF_HEADER = "X-CSRF-Token"
_READS = ("GET", "HEAD", "OPTIONS")

_bearer = HTTPBearer(auto_error=False, description="An API token: `defectlab users token NAME` or "
                                                   "`POST /api/users/{name}/tokens` issues one.")
_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False,
                       description="The browser's sign-in session, set by `POST /api/session`.")


def csrf_of(secret: str) -> str:
    """Return the cross-site request forgery token of a session secret (the page reads it from the API)."""
    return hashlib.sha256(f"csrf:{secret}".encode()).hexdigest()[:32]


def signed_in(request: Request, bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
              cookie: str | None = Security(_cookie)) -> Account:
    """Return the account of the request, and keep it in ``request.state.account`` for the audit log.

    Raises:
        SignInError: No token or session, or one that is wrong, revoked or expired.
        ForbiddenError: A session request that changes something without its CSRF header.
    """
    workspace: Workspace = request.app.state.workspace
    token = bearer.credentials if bearer else request.headers.get("x-api-key")
    if token:
        account = user_of_token(workspace, token)
        if account is None:
            raise SignInError("the API token is wrong, revoked or expired; issue a new one with "
                              "'defectlab users token NAME'")
    elif cookie:
        account = user_of_token(workspace, cookie)
        if account is None:
            raise SignInError("your sign-in session has ended; sign in again")
        sent = request.headers.get(CSRF_HEADER, "")
        if request.method not in _READS and not hmac.compare_digest(sent.encode(), csrf_of(cookie).encode()):
            raise ForbiddenError(f"a change from the browser must send the {CSRF_HEADER} header of its session; "
                                 "reload the page and try again")
    else:
        raise SignInError("sign in first: POST /api/session with your name and password, or send an API token "
                          "in the Authorization header as 'Bearer TOKEN'")
    request.state.account = account
    return account


Signed = Annotated[Account, Depends(signed_in)]


def needs(role: str) -> Any:
    """Return a route dependency that rejects accounts whose role ranks below ``role``."""

    def check(request: Request, account: Signed) -> Account:
        if not has_role(account, role):
            raise ForbiddenError(f"{request.method} {request.url.path} needs the role {role} or higher, and "
                                 f"{account.name!r} is a {account.role}; ask an owner to change your role")
        return account

    return Depends(check)


Labeler = Annotated[Account, needs("labeler")]
Reviewer = Annotated[Account, needs("reviewer")]
Owner = Annotated[Account, needs("owner")]


def acting(account: Account, given: str | None, field: str) -> str:
    """Return the name to record for a change: the signed-in account's.

    Raises:
        ForbiddenError: ``given`` (the body's ``field``) names someone else.
    """
    if given is not None and given != account.name:
        raise ForbiddenError(f"{field} is {given!r} but you are signed in as {account.name!r}; a change is recorded "
                             f"under the name of whoever makes it, so leave {field} out or send {account.name!r}")
    return account.name


def record_changes(workspace: Workspace) -> Callable[[Request, Callable[[Request], Awaitable[Response]]],
                                                         Awaitable[Response]]:
    """Return an HTTP middleware that writes each request that changes something, with its account, to the audit
    log. A request without an account is rejected before any route runs, and only the server's log has it."""

    async def middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        account = getattr(request.state, "account", None)
        if request.method not in _READS and account is not None:
            await run_in_threadpool(_audit, workspace, account.name, request, response.status_code)
        return response

    return middleware


def _audit(workspace: Workspace, user: str, request: Request, status: int) -> None:
    with workspace.session() as session:
        session.add(AuditEntry(user=user, method=request.method, path=request.url.path[:1000], status=status))
