"""Accounts of the people who use a workspace through its server: users with roles, passwords and tokens.

Roles rank ``viewer`` < ``labeler`` < ``reviewer`` < ``owner``; each may do
what the roles below it may:

* ``viewer`` reads everything;
* ``labeler`` also labels images, uploads images and reviews proposals;
* ``reviewer`` also settles disagreements, changes the defect book, changes
  many images at once, creates labeling tasks and starts training, checks and
  evaluations;
* ``owner`` also creates projects and manages accounts.
"""

from defectlab.accounts.tokens import end_session, issue_token, list_tokens, revoke_token, user_of_token
from defectlab.accounts.users import (
    ROLES,
    Account,
    create_first_owner,
    create_user,
    describe_users,
    has_role,
    sign_in,
    update_user,
)

__all__ = [
    "ROLES",
    "Account",
    "create_first_owner",
    "create_user",
    "describe_users",
    "end_session",
    "has_role",
    "issue_token",
    "list_tokens",
    "revoke_token",
    "sign_in",
    "update_user",
    "user_of_token",
]
