"""Password hashes: salted scrypt from the standard library, compared in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["check_password", "hash_password", "new_password"]

_COST = {"n": 2**14, "r": 8, "p": 1}
_SCHEME = "scrypt"


def hash_password(password: str) -> str:
    """Return ``scrypt$N$r$p$SALT$HASH`` for ``password``, with a new random salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_COST)
    return "$".join([_SCHEME, str(_COST["n"]), str(_COST["r"]), str(_COST["p"]),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def check_password(password: str, stored: str) -> bool:
    """Return whether ``password`` matches ``stored``, a value of ``hash_password``."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        return False
    n, r, p = (int(part) for part in parts[1:4])
    salt, expected = base64.b64decode(parts[4]), base64.b64decode(parts[5])
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(expected))
    return hmac.compare_digest(digest, expected)


def new_password() -> str:
    """Return a random password of 16 URL-safe characters, for an account created without one."""
    return secrets.token_urlsafe(12)
