"""Read per-image metadata (station, camera, lot, date...) from a CSV file."""

from __future__ import annotations

import csv
from pathlib import Path

from defectlab.errors import InvalidInputError
from defectlab.formats.records import Problem

__all__ = ["read_metadata_csv"]


def read_metadata_csv(path: Path) -> tuple[dict[str, dict[str, str]], list[Problem]]:
    """Read ``{relative image path: {key: value}}`` from a CSV with a ``path`` column.

    Returns:
        The metadata per image path, and a warning for each row with fewer
        or more values than the header has columns. Such a row is still
        used: missing values are left out, extra values are ignored.

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
    problems: list[Problem] = []
    for row in reader:
        number = reader.line_num
        image_path = (row.pop("path") or "").strip().replace("\\", "/")
        if not image_path:
            raise InvalidInputError(f"{path}, line {number}: the 'path' value is empty")
        if image_path in rows:
            raise InvalidInputError(f"{path}, line {number}: path {image_path!r} already appeared on an earlier line")
        problem = _check_row_length(row, path, number, columns=len(reader.fieldnames))
        if problem is not None:
            problems.append(problem)
        rows[image_path] = {key: value for key, value in row.items() if key and value not in (None, "")}
    return rows, problems


def _check_row_length(row: dict, path: Path, number: int, *, columns: int) -> Problem | None:
    """Warn about a row with missing or extra values, which ``csv.DictReader`` fills with None or collects."""
    missing = [key for key, value in row.items() if key is not None and value is None]
    extra = row.get(None) or []
    if missing:
        message = (f"the row has {columns - len(missing)} of the header's {columns} values; "
                   f"no value for {', '.join(missing)}. Add the missing values or empty fields")
    elif extra:
        message = (f"the row has {columns + len(extra)} values but the header has {columns} columns; "
                   f"the extra values {extra} are ignored")
    else:
        return None
    return Problem(str(path), message, "warning", number)
