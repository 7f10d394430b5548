"""Content-addressed file store: each blob is kept once, named by its SHA-256.

Blobs are written to a temporary file in the same folder and then renamed,
so a crash never leaves a half-written blob under its final name. A blob
that no database row refers to (left by an import that was rolled back) is
harmless and is removed by ``BlobStore.collect_garbage``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from defectlab.errors import NotFoundError

__all__ = ["BlobStore", "sha256_of"]


def sha256_of(data: bytes) -> str:
    """Return the hex SHA-256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    """Blobs under ``root/ab/cdef...``, where ``abcdef...`` is the SHA-256 of the content."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:]

    def put(self, data: bytes) -> str:
        """Store ``data`` atomically unless it is already stored; return its digest."""
        digest = sha256_of(data)
        target = self.path_of(digest)
        if target.exists():
            return digest

        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return digest

    def get(self, digest: str) -> bytes:
        path = self.path_of(digest)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(
                f"blob {digest} is missing from {self.root}; the workspace's files were changed outside defectlab"
            ) from None

    def collect_garbage(self, referenced: Iterable[str]) -> int:
        """Delete blobs and leftover temporary files not in ``referenced``; return how many were deleted."""
        keep = set(referenced)
        removed = 0
        for path in self.root.glob("*/*"):
            digest = path.parent.name + path.name
            if path.name.startswith(".tmp-") or digest not in keep:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
