"""Uploads from the browser: files staged in the workspace, then imported by a job with the command line's report.

A browser sends a folder in several requests, so an upload is a staging
folder, ``uploads/<id>`` in the workspace, that requests add files to under
their relative paths. The import job reads it like ``defectlab import`` reads
a folder, with format detection, and removes it when done. A zip archive in
the upload is unpacked first, into a folder named after it.

Every path is checked before anything is written: a path that is absolute,
names a drive, or climbs out with ``..`` is rejected, in a request and inside
an archive alike, so no file lands outside the staging folder. The bytes of
an upload, unpacked archives included, are limited by ``max_upload_bytes``.
The pixel count of each image is limited at decoding, as in every import.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from defectlab.errors import InvalidInputError, NotFoundError
from defectlab.workspace import Workspace

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "import_upload", "max_upload_bytes", "require_upload", "safe_relative_path",
           "stage_files", "start_upload"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_BYTES = 4 << 30
"""Largest upload in bytes, archives counted unpacked; ``DEFECTLAB_MAX_UPLOAD_BYTES`` overrides it."""

MAX_ARCHIVE_ENTRIES = 200_000
MAX_PATH_CHARS = 1000
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_CHUNK = 1 << 20


def max_upload_bytes() -> int:
    """Return the upload limit in bytes, from ``DEFECTLAB_MAX_UPLOAD_BYTES`` when set."""
    text = os.environ.get("DEFECTLAB_MAX_UPLOAD_BYTES")
    if text is None:
        return DEFAULT_MAX_UPLOAD_BYTES
    if not text.isdigit() or int(text) < 1:
        raise InvalidInputError(f"DEFECTLAB_MAX_UPLOAD_BYTES={text!r} is not valid; give a number of bytes above 0")
    return int(text)


def start_upload(workspace: Workspace) -> str:
    """Create an empty staging folder and return its upload id."""
    upload_id = secrets.token_hex(16)
    _folder(workspace, upload_id).mkdir(parents=True)
    return upload_id


def stage_files(workspace: Workspace, upload_id: str, files: list[tuple[str, BinaryIO]]) -> dict[str, int]:
    """Copy uploaded files into the staging folder under their checked relative paths.

    Args:
        files: Each file's relative path, as the browser sent it, and its content.

    Returns:
        ``files`` and ``bytes`` staged by this call, and ``upload_bytes``: the upload's size so far.

    Raises:
        InvalidInputError: A path is not a safe relative path (nothing of this call is kept), or the
            upload grows past its limit.
        NotFoundError: No upload has this id.
    """
    folder = _existing_folder(workspace, upload_id)
    targets = [(folder / safe_relative_path(name), stream) for name, stream in files]
    used = _size_of(folder)
    written = 0
    for target, stream in targets:
        written += _copy(stream, target, allowed=max_upload_bytes() - used - written)
    return {"files": len(targets), "bytes": written, "upload_bytes": used + written}


def _copy(stream: BinaryIO, target: Path, *, allowed: int) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with target.open("wb") as output:
        while chunk := stream.read(_CHUNK):
            written += len(chunk)
            if written > allowed:
                break
            output.write(chunk)
    if written > allowed:
        target.unlink()
        raise InvalidInputError(f"the upload is larger than the limit of {max_upload_bytes()} bytes at "
                                f"{target.name!r}; upload fewer files or raise DEFECTLAB_MAX_UPLOAD_BYTES")
    return written


def import_upload(workspace: Workspace, project_name: str, upload_id: str, *, progress=None) -> dict[str, Any]:
    """Unpack the upload's zip archives, import the staging folder into the project, and remove it.

    Returns:
        The import report (``ImportReport.to_dict``), with ``files``: how many files were staged.

    Raises:
        InvalidInputError: An archive is unsafe or too large, or no image format is found.
        NotFoundError: No upload has this id.
    """
    from defectlab.data.importer import import_path

    folder = _existing_folder(workspace, upload_id)
    try:
        for archive in sorted(folder.rglob("*.zip")):
            _unpack(archive, folder)
        files = sum(1 for path in folder.rglob("*") if path.is_file())
        root = _content_root(folder)
        report = import_path(workspace, project_name, root, format=_loose_images_format(root), progress=progress)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {**report.to_dict(), "files": files}


def safe_relative_path(name: str) -> PurePosixPath:
    """Return ``name`` as a relative path inside the staging folder, or raise naming the problem.

    Backslashes count as separators, because a browser on Windows may send them.
    """
    parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".")]
    if not parts or len(name) > MAX_PATH_CHARS:
        raise InvalidInputError(f"file name {name!r:.120} is not valid; give a relative path of 1 to "
                                f"{MAX_PATH_CHARS} characters")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise InvalidInputError(f"file name {name!r:.120} points outside the upload; give a path inside the "
                                "uploaded folder, without '..' or a leading '/'")
    return PurePosixPath(*parts)


def _unpack(archive: Path, folder: Path) -> None:
    """Unpack a zip archive next to itself, into a folder named after it, then remove the archive."""
    target = archive.with_suffix("")
    try:
        with zipfile.ZipFile(archive) as opened:
            members = [member for member in opened.infolist() if not member.is_dir()]
            _check_archive(archive.name, members, budget=max_upload_bytes() - _size_of(folder))
            for member in members:
                destination = target / safe_relative_path(member.filename)
                destination.parent.mkdir(parents=True, exist_ok=True)
                with opened.open(member) as source, destination.open("wb") as output:
                    shutil.copyfileobj(source, output, _CHUNK)
    except zipfile.BadZipFile as error:
        raise InvalidInputError(f"{archive.name} is not a valid zip archive ({error}); zip the folder again") from error
    archive.unlink()
    logger.info("unpacked %s: %d files", archive.name, len(members))


def _check_archive(name: str, members: list[zipfile.ZipInfo], *, budget: int) -> None:
    if len(members) > MAX_ARCHIVE_ENTRIES:
        raise InvalidInputError(f"{name} contains {len(members)} files; an upload takes at most "
                                f"{MAX_ARCHIVE_ENTRIES}")
    for member in members:
        safe_relative_path(member.filename)
        # The upper 16 bits of external_attr hold the Unix mode; a link could point anywhere.
        if (member.external_attr >> 16) & 0o170000 == 0o120000:
            raise InvalidInputError(f"{name} contains the symbolic link {member.filename!r}; archive the files "
                                    "themselves")
    unpacked = sum(member.file_size for member in members)
    if unpacked > budget:
        raise InvalidInputError(f"{name} unpacks to {unpacked} bytes, more than the {budget} bytes left of the "
                                "upload limit; upload a smaller archive or raise DEFECTLAB_MAX_UPLOAD_BYTES")


def _loose_images_format(root: Path) -> str | None:
    """Return ``folders`` for images dropped loose, without labels, which no format detection matches; else None.

    The folders reader imports such images unlabeled, as a person who drops a
    few pictures expects. Any other layout is detected as ``defectlab import``
    detects it.
    """
    from defectlab.formats import detect_format
    from defectlab.formats._layout import is_image_file

    try:
        detect_format(root)
    except InvalidInputError:
        if any(is_image_file(path) for path in root.iterdir() if path.is_file()):
            return "folders"
    return None


def _content_root(folder: Path) -> Path:
    """Return the single folder inside the upload (a dropped folder or an unpacked archive), else the upload."""
    entries = list(folder.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else folder


def _folder(workspace: Workspace, upload_id: str) -> Path:
    if not _UPLOAD_ID.match(upload_id):
        raise NotFoundError(f"upload {upload_id!r:.40} does not exist; start one with POST .../uploads")
    return workspace.root / "uploads" / upload_id


def require_upload(workspace: Workspace, upload_id: str) -> None:
    """Check that an upload exists and has not been imported yet.

    Raises:
        NotFoundError: No staging folder has this id.
    """
    _existing_folder(workspace, upload_id)


def _existing_folder(workspace: Workspace, upload_id: str) -> Path:
    folder = _folder(workspace, upload_id)
    if not folder.is_dir():
        raise NotFoundError(f"upload {upload_id} does not exist or was imported already; start a new upload")
    return folder


def _size_of(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
