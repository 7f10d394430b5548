"""Pages of a project's images with filters and sorting, and changes to many images at once.

The data browser shows one page of thumbnails at a time, so everything here
runs in the database. The label, the filters, the order and the page are
parts of one query, so a page of a 10,000-image project needs no Python loop
over all its images. An image's label follows ``image_label``: its newest
image-level class, else the class of its first region.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, and_, cast, delete, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select

from defectlab.errors import InvalidInputError, NotFoundError
from defectlab.formats._layout import is_ok_folder
from defectlab.formats.records import OK_CLASS
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, DefectClass, Image, ImageTag, Project

__all__ = ["BULK_ACTIONS", "MAX_TAG_CHARS", "SORT_KEYS", "SPLITS", "ImageFilter", "browse_images", "change_images",
           "check_tag", "find_neighbours", "list_labelers", "list_tags", "metadata_keys"]

logger = logging.getLogger(__name__)

SORT_KEYS = ("path", "-path", "id", "-id", "label", "-label", "split", "-split", "created", "-created")
"""Orders of a page; a leading '-' reverses the order. Ties are broken by image id."""

SPLITS = ("train", "dev", "test")

BULK_ACTIONS = ("set_split", "set_class", "exclude", "include", "add_tag", "remove_tag")
"""Changes ``change_images`` applies to a selection: a split (or none), an image-level class, exclusion, or a tag."""

MAX_TAG_CHARS = 100
"""Maximum tag length, in characters: the length of the ``image_tags.tag`` column."""

MAX_PAGE_SIZE = 500
"""Largest page, in images; a page of thumbnails a person looks at is far smaller."""

MAX_SELECTION = 10_000
"""Most images one bulk change may touch."""


@dataclass(frozen=True)
class ImageFilter:
    """A filter on a project's images; fields left None do not filter.

    Attributes:
        label: A class name: images whose label is that class. ``ok`` finds images
            explicitly labeled as having no defect.
        split: ``train``, ``dev``, ``test``, or ``none`` for images without a split.
        labeled: True for images with a label, False for those without one.
        labeler: Images with at least one annotation by this labeler.
        metadata_key: Images whose metadata has this key; with ``metadata_value``,
            whose value, written as text, equals it.
        excluded: True for excluded images only, False for included ones only.
        tag: Images that carry this tag.
        image_ids: Only these images, such as those an evaluation found with
            one outcome; None does not filter, and an empty set passes no image.
    """

    label: str | None = None
    split: str | None = None
    labeled: bool | None = None
    labeler: str | None = None
    metadata_key: str | None = None
    metadata_value: str | None = None
    excluded: bool | None = None
    tag: str | None = None
    image_ids: frozenset[int] | None = None

    def __post_init__(self) -> None:
        if self.split is not None and self.split not in (*SPLITS, "none"):
            raise InvalidInputError(f"split {self.split!r} is not valid; use one of: {', '.join(SPLITS)}, none")
        if self.metadata_value is not None and not self.metadata_key:
            raise InvalidInputError("a metadata value filters only together with its key; give the metadata key too")


def browse_images(workspace: Workspace, project_name: str, where: ImageFilter = ImageFilter(), *,
                  sort: str = "path", page: int = 1, page_size: int = 60) -> dict[str, Any]:
    """Return one page of the project's images that pass ``where``, in the order ``sort`` names.

    Args:
        sort: One of ``SORT_KEYS``.
        page: The page number, from 1.
        page_size: Images per page, 1 to ``MAX_PAGE_SIZE``.

    Returns:
        ``total`` (images that pass), ``page``, ``page_size``, ``pages`` and
        ``images``: each with ``id``, ``path``, ``width``, ``height``, ``split``,
        ``label``, ``excluded``, ``version``, ``metadata`` and ``tags`` (sorted).

    Raises:
        InvalidInputError: An unknown sort key, split, or a page out of range.
        NotFoundError: The project does not exist.
    """
    _check_page(sort, page, page_size)

    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        label = _label_column()
        query = _filtered(select(Image, label.label("label_name")), project, where, label)
        total = session.scalar(_filtered(select(func.count(Image.id)), project, where, label))
        rows = session.execute(_ordered(query, sort, label).limit(page_size).offset((page - 1) * page_size)).all()
        tags = _tags_of(session, [image.id for image, _ in rows])
        images = [_describe_row(image, label_name, tags.get(image.id, [])) for image, label_name in rows]

    return {"total": total, "page": page, "page_size": page_size, "pages": max(1, -(-total // page_size)),
            "images": images}


def find_neighbours(workspace: Workspace, project_name: str, image_id: int, where: ImageFilter = ImageFilter(), *,
                    sort: str = "path") -> dict[str, Any]:
    """Return the ids of the images before and after ``image_id`` in the browser's order, None at either end.

    Also returns ``position`` (from 1, None when the image does not pass the
    filter, in which case both neighbours are the first image) and ``total``.
    """
    _check_page(sort, 1, 1)

    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        label = _label_column()
        ids = list(session.scalars(_ordered(_filtered(select(Image.id), project, where, label), sort, label)))

    if image_id not in ids:
        first = ids[0] if ids else None
        return {"previous": None, "next": first, "position": None, "total": len(ids)}
    index = ids.index(image_id)
    return {"previous": ids[index - 1] if index > 0 else None,
            "next": ids[index + 1] if index + 1 < len(ids) else None, "position": index + 1, "total": len(ids)}


def metadata_keys(workspace: Workspace, project_name: str, *, limit: int = 50) -> dict[str, list[str]]:
    """Return the project's metadata keys with up to ``limit`` distinct values each, as text, sorted."""
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        found: dict[str, set[str]] = {}
        for meta in session.scalars(select(Image.meta).where(Image.project_id == project.id)):
            for key, value in (meta or {}).items():
                values = found.setdefault(str(key), set())
                if len(values) < limit:
                    values.add(_as_text(value))
    return {key: sorted(values) for key, values in sorted(found.items())}


def list_tags(workspace: Workspace, project_name: str) -> list[str]:
    """Return the tags on the project's images, sorted."""
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        query = (select(ImageTag.tag).join(Image, Image.id == ImageTag.image_id)
                 .where(Image.project_id == project.id).distinct().order_by(ImageTag.tag))
        return list(session.scalars(query))


def check_tag(tag: str | None) -> str:
    """Return the tag without surrounding spaces.

    Raises:
        InvalidInputError: The tag is missing, empty, longer than ``MAX_TAG_CHARS`` or contains a control character.
    """
    words = (tag or "").strip()
    if not words:
        raise InvalidInputError("the tag is missing or empty; send the tag's words as value, such as 'recheck'")
    if len(words) > MAX_TAG_CHARS:
        raise InvalidInputError(f"the tag has {len(words)} characters; use at most {MAX_TAG_CHARS}")
    if any(ord(character) < 32 or ord(character) == 127 for character in words):
        raise InvalidInputError(f"the tag {words!r} contains a control character such as a line break; use one "
                                "line of plain text")
    return words


def list_labelers(workspace: Workspace, project_name: str) -> list[str]:
    """Return everyone whose annotations are among the project's labels, sorted (``import`` for imported labels)."""
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        query = (select(Annotation.labeler).join(Image, Image.id == Annotation.image_id)
                 .where(Image.project_id == project.id).distinct().order_by(Annotation.labeler))
        return list(session.scalars(query))


def change_images(workspace: Workspace, project_name: str, image_ids: list[int], action: str, *,
                  value: str | None = None, labeler: str) -> dict[str, Any]:
    """Apply one change to every image of a selection, in one transaction.

    Args:
        action: One of ``BULK_ACTIONS``.
        value: For ``set_split``, ``train``, ``dev``, ``test`` or None to clear
            the split. For ``set_class``, a class name (``ok`` for no defect),
            which replaces the class ``labeler`` gave each image before. For
            ``add_tag`` and ``remove_tag``, the tag (see ``check_tag``).
        labeler: Who makes the change; recorded with a class or a tag.

    Returns:
        ``changed``: how many images changed, and ``action``.

    Raises:
        InvalidInputError: An unknown action, split or class, or an empty or too large selection.
        NotFoundError: An image id is not in the project (nothing is changed).
    """
    _check_selection(image_ids, action)

    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        images = _selected_images(session, project, image_ids)
        if action in ("add_tag", "remove_tag"):
            changed = _change_tags(session, [image.id for image in images], action, check_tag(value), labeler)
        else:
            apply = _bulk_change(session, project, action, value, labeler)
            changed = sum(1 for image in images if apply(image))
        session.flush()

    logger.info("%s on %d of %d selected images of %s by %s", action, changed, len(image_ids), project_name, labeler)
    return {"action": action, "changed": changed}


def _check_page(sort: str, page: int, page_size: int) -> None:
    if sort not in SORT_KEYS:
        raise InvalidInputError(f"sort {sort!r} is not known; use one of: {', '.join(SORT_KEYS)}")
    if page < 1:
        raise InvalidInputError(f"page {page} is not valid; pages are numbered from 1")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInputError(f"page size {page_size} is not valid; use 1 to {MAX_PAGE_SIZE}")


def _label_column() -> ColumnElement[str | None]:
    """Return an SQL expression of each image's label name, as ``image_label`` computes it.

    The inner queries name ``Image`` as the query to correlate with, because
    by default each would correlate only with the class-name query around it.
    """
    newest_class = (select(Annotation.class_id).where(Annotation.image_id == Image.id, Annotation.kind == "class")
                    .order_by(Annotation.id.desc()).limit(1).correlate(Image).scalar_subquery())
    first_region = (select(Annotation.class_id).where(Annotation.image_id == Image.id)
                    .order_by(Annotation.id).limit(1).correlate(Image).scalar_subquery())
    class_id = func.coalesce(newest_class, first_region)
    return select(DefectClass.name).where(DefectClass.id == class_id).scalar_subquery()


def _filtered(query: Select, project: Project, where: ImageFilter, label: ColumnElement) -> Select:
    conditions = [Image.project_id == project.id]
    if where.label is not None:
        conditions.append(label == (OK_CLASS if is_ok_folder(where.label) else where.label))
    if where.labeled is not None:
        conditions.append(label.is_not(None) if where.labeled else label.is_(None))
    if where.labeler is not None:
        conditions.append(select(Annotation.id).where(Annotation.image_id == Image.id,
                                                      Annotation.labeler == where.labeler).exists())
    if where.split is not None:
        conditions.append(Image.split.is_(None) if where.split == "none" else Image.split == where.split)
    if where.excluded is not None:
        conditions.append(Image.excluded.is_(where.excluded))
    if where.tag is not None:
        conditions.append(select(ImageTag.id).where(ImageTag.image_id == Image.id, ImageTag.tag == where.tag).exists())
    if where.image_ids is not None:
        conditions.append(Image.id.in_(sorted(where.image_ids)))
    if where.metadata_key:
        # as_string() gives SQL NULL for a missing key; the JSON element itself would be the text 'null'.
        value = Image.meta[where.metadata_key].as_string()
        conditions.append(value.is_not(None))
        if where.metadata_value is not None:
            conditions.append(cast(value, String) == where.metadata_value)
    return query.where(and_(*conditions))


def _ordered(query: Select, sort: str, label: ColumnElement) -> Select:
    key = sort.removeprefix("-")
    column = {"path": Image.path, "id": Image.id, "label": label, "split": Image.split,
              "created": Image.created_at}[key]
    if sort.startswith("-"):
        return query.order_by(column.desc(), Image.id.desc())
    return query.order_by(column, Image.id)


def _describe_row(image: Image, label: str | None, tags: list[str]) -> dict[str, Any]:
    return {"id": image.id, "path": image.path, "width": image.width, "height": image.height, "split": image.split,
            "label": label, "excluded": image.excluded, "version": image.version, "metadata": dict(image.meta or {}),
            "tags": tags}


def _tags_of(session: Session, image_ids: list[int]) -> dict[int, list[str]]:
    tags: dict[int, list[str]] = {}
    query = select(ImageTag.image_id, ImageTag.tag).where(ImageTag.image_id.in_(image_ids)).order_by(ImageTag.tag)
    for image_id, tag in session.execute(query):
        tags.setdefault(image_id, []).append(tag)
    return tags


def _change_tags(session: Session, image_ids: list[int], action: str, tag: str, labeler: str) -> int:
    """Add the tag to the images that lack it, or remove it from those that carry it; return how many changed.

    A tag is not a label, so the images' versions stay as they are and a
    labeling page open on one of them can still save.
    """
    carrying = set(session.scalars(select(ImageTag.image_id).where(ImageTag.image_id.in_(image_ids),
                                                                   ImageTag.tag == tag)))
    if action == "remove_tag":
        session.execute(delete(ImageTag).where(ImageTag.image_id.in_(carrying), ImageTag.tag == tag))
        return len(carrying)
    missing = [image_id for image_id in image_ids if image_id not in carrying]
    session.add_all(ImageTag(image_id=image_id, tag=tag, created_by=labeler) for image_id in missing)
    return len(missing)


def _as_text(value: Any) -> str:
    """Write a metadata value as the metadata filter compares it."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _check_selection(image_ids: list[int], action: str) -> None:
    if action not in BULK_ACTIONS:
        raise InvalidInputError(f"bulk action {action!r} is not known; use one of: {', '.join(BULK_ACTIONS)}")
    if not image_ids:
        raise InvalidInputError("no image is selected; select one or more images first")
    if len(image_ids) > MAX_SELECTION:
        raise InvalidInputError(f"{len(image_ids)} images are selected; change at most {MAX_SELECTION} at once")


def _selected_images(session: Session, project: Project, image_ids: list[int]) -> list[Image]:
    wanted = set(image_ids)
    images = list(session.scalars(select(Image).where(Image.project_id == project.id, Image.id.in_(wanted))))
    missing = sorted(wanted - {image.id for image in images})
    if missing:
        raise NotFoundError(f"image {missing[0]} is not in project {project.name!r} ({len(missing)} of the selected "
                            "images are not); reload the page and select again")
    return images


def _bulk_change(session: Session, project: Project, action: str, value: str | None, labeler: str):
    """Return a function that applies ``action`` to one image and returns whether the image changed."""
    if action == "set_split":
        if value is not None and value not in SPLITS:
            raise InvalidInputError(f"split {value!r} is not valid; use one of: {', '.join(SPLITS)}, or none")
        return lambda image: _set(image, "split", value)
    if action in ("exclude", "include"):
        return lambda image: _set(image, "excluded", action == "exclude")
    defect_class = _project_class(session, project, value)
    return lambda image: _replace_class(image, defect_class, labeler)


def _set(image: Image, field: str, value: Any) -> bool:
    if getattr(image, field) == value:
        return False
    setattr(image, field, value)
    image.version += 1
    return True


def _project_class(session: Session, project: Project, name: str | None) -> DefectClass:
    name = OK_CLASS if name is not None and is_ok_folder(name) else name
    defect_class = session.scalar(select(DefectClass).where(DefectClass.project_id == project.id,
                                                            DefectClass.name == name))
    if defect_class is None:
        known = ", ".join(c.name for c in project.classes)
        raise InvalidInputError(f"class {name!r} is not in project {project.name!r}; use one of: {known}")
    return defect_class


def _replace_class(image: Image, defect_class: DefectClass, labeler: str) -> bool:
    image.annotations = [a for a in image.annotations if not (a.kind == "class" and a.labeler == labeler)]
    image.annotations.append(Annotation(defect_class=defect_class, labeler=labeler, kind="class"))
    image.version += 1
    return True
