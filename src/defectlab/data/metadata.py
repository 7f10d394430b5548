"""Read per-image metadata (station, camera, lot, date...) from a CSV file."""

from __future__ import annotations

import csv
from pathlib import Path

from defectlab.errors import InvalidInputError

__all__ = ["read_metadata_csv"]


def read_metadata_csv(path: Path) -> dict[str, dict[str, str]]:
    """Return ``{relative image path: {key: value}}`` from a CSV with a ``path`` column.

    Raises:
        InvalidInputError: The file is missing, has no ``path`` column, or a
            row repeats a path; the message names the file and line.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInputError(f"metadata file {path} does not exist") from None
    except UnicodeDecodeError as error:
        raise InvalidInputError(f"metadata file {path} is not UTF-8 text ({error}); save it as UTF-8 CSV") from None

    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or "path" not in reader.fieldnames:
        raise InvalidInputError(
            f"{path}, line 1: the header {reader.fieldnames} has no 'path' column; add a column named 'path' "
            "with each image's path relative to the imported folder"
        )

    rows: dict[str, dict[str, str]] = {}
    for number, row in enumerate(reader, start=2):
        image_path = (row.pop("path") or "").strip().replace("\\", "/")
        if not image_path:
            raise InvalidInputError(f"{path}, line {number}: the 'path' value is empty")
        if image_path in rows:
            raise InvalidInputError(f"{path}, line {number}: path {image_path!r} already appeared on an earlier line")
        rows[image_path] = {key: value for key, value in row.items() if key and value not in (None, "")}
    return rows
