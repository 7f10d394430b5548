"""Exceptions raised by defectlab.

Every error a user can cause derives from ``DefectlabError``, so the CLI and
the server map the whole family to exit codes and HTTP statuses in one place::

    DefectlabError
    ├── InvalidInputError      bad file, label line, option or setting (HTTP 400)
    │   └── ImageDecodeError   an image file that cannot be decoded
    ├── SignInError            no account, or a wrong password or token (HTTP 401)
    ├── ForbiddenError         the account's role does not allow the change (HTTP 403)
    ├── NotFoundError          unknown project, image or model (HTTP 404)
    ├── ConflictError          a name that exists or an edit based on an old version (HTTP 409)
    └── TrainingError          data that cannot train the requested model (HTTP 422)
"""

from __future__ import annotations

__all__ = [
    "ConflictError",
    "DefectlabError",
    "ForbiddenError",
    "ImageDecodeError",
    "InvalidInputError",
    "NotFoundError",
    "SignInError",
    "TrainingError",
]


class DefectlabError(Exception):
    """Base class of every error defectlab raises on purpose."""

    http_status = 500


class InvalidInputError(DefectlabError):
    """A file, label line, option or setting is not valid."""

    http_status = 400


class ImageDecodeError(InvalidInputError):
    """An image file is empty, truncated, corrupt or of an unknown format."""


class SignInError(DefectlabError):
    """A request carries no account, or a wrong name, password or token."""

    http_status = 401


class ForbiddenError(DefectlabError):
    """The signed-in account's role does not allow the request."""

    http_status = 403


class NotFoundError(DefectlabError):
    """A project, image or model does not exist."""

    http_status = 404


class ConflictError(DefectlabError):
    """A name already exists, or an edit was based on an outdated version."""

    http_status = 409


class TrainingError(DefectlabError):
    """The project's data cannot train the requested model."""

    http_status = 422
