"""The defect book: per defect class, a definition, a decision rule and linked example images; versioned.

Every change writes a new ``BookVersion`` row holding the whole entry, with
who made it, when, and what it changed in words, so any older version can
be read back as it was. A class without a description yet has version 0.

A decision rule says when a region of the class makes an item defective:
``min_length`` (longest side of the region's box) and ``min_area``, in
pixels, or in millimetres with ``pixel_size_mm`` (millimetres per pixel).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from defectlab.errors import ConflictError, InvalidInputError, NotFoundError
from defectlab.workspace import Workspace
from defectlab.workspace.schema import BookVersion, DefectClass, Image, Project

__all__ = ["EXAMPLE_ROLES", "add_example", "decision_rules", "entry_history", "read_book", "read_entry", "remove_example",
           "update_entry"]

logger = logging.getLogger(__name__)

EXAMPLE_ROLES = ("example", "counter_example", "borderline")
"""Roles of a linked image: a clear case, a look-alike that is not the defect, or a case near the rule."""

_RULE_KEYS = ("min_length", "min_area", "unit", "pixel_size_mm")
_UNITS = ("px", "mm")


def read_entry(workspace: Workspace, project_name: str, class_name: str, *,
               version: int | None = None) -> dict[str, Any]:
    """Return a class's entry (the newest, or ``version``): definition, rule, examples, version, author and date.

    Raises:
        NotFoundError: The project, class or version does not exist.
    """
    with workspace.session() as session:
        defect_class = _find_class(workspace, session, project_name, class_name)
        row = _version_row(session, defect_class, version)
        if version is not None and row is None and version != 0:
            newest = _newest_version(session, defect_class)
            raise NotFoundError(f"the defect book entry of {class_name!r} has no version {version}; "
                                f"its versions are 0 to {newest}")
        return _describe(defect_class.name, row)


def read_book(workspace: Workspace, project_name: str) -> list[dict[str, Any]]:
    """Return the newest entry of every class of the project, in the project's class order."""
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        return [_describe(c.name, _version_row(session, c, None)) for c in project.classes]


def decision_rules(workspace: Workspace, project_name: str) -> dict[str, dict[str, Any]]:
    """Return the newest decision rule of every class that has one, by class name."""
    return {entry["class"]: entry["rule"] for entry in read_book(workspace, project_name) if entry["rule"]}


def entry_history(workspace: Workspace, project_name: str, class_name: str) -> list[dict[str, Any]]:
    """Return every version of a class's entry, oldest first: version, author, date and what changed."""
    with workspace.session() as session:
        defect_class = _find_class(workspace, session, project_name, class_name)
        rows = session.scalars(select(BookVersion).where(BookVersion.class_id == defect_class.id)
                               .order_by(BookVersion.version)).all()
        return [{"version": r.version, "author": r.author, "created_at": r.created_at.isoformat(), "change": r.change}
                for r in rows]


def update_entry(workspace: Workspace, project_name: str, class_name: str, *, author: str,
                 definition: str | None = None, rule: dict[str, Any] | None = None,
                 based_on: int | None = None) -> dict[str, Any]:
    """Change a class's definition or decision rule; fields left None stay as they are.

    Args:
        rule: Keys ``min_length``, ``min_area``, ``unit`` (``px`` or ``mm``) and
            ``pixel_size_mm``; a key set to None removes it.
        based_on: The version the change was made on; a newer current version
            means someone changed the entry since, and nothing is saved.

    Raises:
        InvalidInputError: The rule is not valid, or nothing would change.
        ConflictError: ``based_on`` is not the current version.
    """
    with workspace.session() as session:
        defect_class = _find_class(workspace, session, project_name, class_name)
        content = _current_content(session, defect_class, based_on)
        changes = []
        if definition is not None and definition.strip() != content["definition"]:
            content["definition"] = definition.strip()
            changes.append("definition")
        if rule is not None:
            merged = _checked_rule({**content["rule"], **rule})
            if merged != content["rule"]:
                content["rule"] = merged
                changes.append("decision rule")
        if not changes:
            raise InvalidInputError(f"nothing to change in the defect book entry of {class_name!r}: "
                                    "give a new definition or decision rule")
        return _save(session, defect_class, content, author, "changed the " + " and the ".join(changes))


def add_example(workspace: Workspace, project_name: str, class_name: str, image_id: int, *, role: str,
                author: str, note: str | None = None, session: Session | None = None) -> dict[str, Any]:
    """Link an image to a class's entry as an example, counter-example or borderline case (replacing its old link).

    Pass ``session`` to make the change part of a larger transaction.

    Raises:
        InvalidInputError: The role is not one of ``EXAMPLE_ROLES``.
        NotFoundError: The image is not in the project.
    """
    if role not in EXAMPLE_ROLES:
        raise InvalidInputError(f"example role {role!r} is not valid; use one of: {', '.join(EXAMPLE_ROLES)}")
    if session is None:
        with workspace.session() as own:
            return add_example(workspace, project_name, class_name, image_id, role=role, author=author,
                               note=note, session=own)
    defect_class = _find_class(workspace, session, project_name, class_name)
    image = session.get(Image, image_id)
    if image is None or image.project_id != defect_class.project_id:
        raise NotFoundError(f"image {image_id} is not in project {project_name!r}; list them with "
                            f"'defectlab images {project_name}'")
    content = _current_content(session, defect_class, None)
    kept = [e for e in content["examples"] if e["image_id"] != image_id]
    content["examples"] = [*kept, {"image_id": image_id, "path": image.path, "role": role, "note": note or ""}]
    change = f"added {image.path} as {role.replace('_', '-')}" + (f": {note}" if note else "")
    return _save(session, defect_class, content, author, change)


def remove_example(workspace: Workspace, project_name: str, class_name: str, image_id: int, *,
                   author: str) -> dict[str, Any]:
    """Unlink an image from a class's entry.

    Raises:
        NotFoundError: The image is not linked to the entry.
    """
    with workspace.session() as session:
        defect_class = _find_class(workspace, session, project_name, class_name)
        content = _current_content(session, defect_class, None)
        linked = [e for e in content["examples"] if e["image_id"] == image_id]
        if not linked:
            raise NotFoundError(f"image {image_id} is not an example of {class_name!r} in the defect book")
        content["examples"] = [e for e in content["examples"] if e["image_id"] != image_id]
        return _save(session, defect_class, content, author, f"removed {linked[0]['path']}")


def _find_class(workspace: Workspace, session: Session, project_name: str, class_name: str) -> DefectClass:
    project: Project = workspace.get_project(session, project_name)
    for defect_class in project.classes:
        if defect_class.name == class_name:
            return defect_class
    known = ", ".join(c.name for c in project.classes) or "none yet"
    raise NotFoundError(f"class {class_name!r} is not in project {project_name!r}; its classes are: {known}")


def _version_row(session: Session, defect_class: DefectClass, version: int | None) -> BookVersion | None:
    query = select(BookVersion).where(BookVersion.class_id == defect_class.id)
    if version is not None:
        return session.scalar(query.where(BookVersion.version == version))
    return session.scalar(query.order_by(BookVersion.version.desc()).limit(1))


def _newest_version(session: Session, defect_class: DefectClass) -> int:
    newest = session.scalar(select(func.max(BookVersion.version)).where(BookVersion.class_id == defect_class.id))
    return int(newest or 0)


def _current_content(session: Session, defect_class: DefectClass, based_on: int | None) -> dict[str, Any]:
    row = _version_row(session, defect_class, None)
    current = row.version if row is not None else 0
    if based_on is not None and based_on != current:
        raise ConflictError(f"the defect book entry of {defect_class.name!r} is at version {current}, not "
                            f"{based_on}: someone changed it since; read it again and repeat the change")
    content = _describe(defect_class.name, row)
    return {"definition": content["definition"], "rule": content["rule"], "examples": content["examples"]}


def _save(session: Session, defect_class: DefectClass, content: dict[str, Any], author: str,
          change: str) -> dict[str, Any]:
    if not author.strip():
        raise InvalidInputError("the defect book records who made each change; give an author name")
    row = BookVersion(class_id=defect_class.id, version=_newest_version(session, defect_class) + 1,
                      author=author.strip(), change=change[:1000], content=content)
    session.add(row)
    session.flush()
    logger.info("defect book %s version %d by %s: %s", defect_class.name, row.version, row.author, change)
    return _describe(defect_class.name, row)


def _describe(class_name: str, row: BookVersion | None) -> dict[str, Any]:
    if row is None:
        return {"class": class_name, "version": 0, "author": None, "created_at": None, "change": None,
                "definition": "", "rule": {}, "examples": []}
    content = row.content
    return {"class": class_name, "version": row.version, "author": row.author,
            "created_at": row.created_at.isoformat(), "change": row.change,
            "definition": content.get("definition", ""), "rule": dict(content.get("rule", {})),
            "examples": [dict(e) for e in content.get("examples", [])]}


def _checked_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """Return the rule without unset keys, or raise a message naming the field that is wrong."""
    unknown = sorted(set(rule) - set(_RULE_KEYS))
    if unknown:
        raise InvalidInputError(f"decision rule field {unknown[0]!r} is not known; use: {', '.join(_RULE_KEYS)}")
    kept = {key: value for key, value in rule.items() if value is not None}
    for key in ("min_length", "min_area", "pixel_size_mm"):
        if key in kept:
            value = kept[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise InvalidInputError(f"decision rule field {key!r} must be a number of 0 or more, not {value!r}")
            kept[key] = float(value)
    unit = kept.setdefault("unit", "px")
    if unit not in _UNITS:
        raise InvalidInputError(f"decision rule field 'unit' must be 'px' or 'mm', not {unit!r}")
    if unit == "mm" and not kept.get("pixel_size_mm"):
        raise InvalidInputError("a decision rule in millimetres needs 'pixel_size_mm' (millimetres per pixel) "
                                "above 0; measure it with a ruler in the camera's view")
    if "pixel_size_mm" in kept and kept["pixel_size_mm"] == 0:
        raise InvalidInputError("decision rule field 'pixel_size_mm' must be above 0")
    return kept
