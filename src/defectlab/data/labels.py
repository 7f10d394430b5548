"""Listing a project's images and setting an image's class, one image at a time."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from defectlab.data.snapshot import image_label
from defectlab.errors import ConflictError, InvalidInputError, NotFoundError
from defectlab.formats._layout import is_ok_folder
from defectlab.formats.records import OK_CLASS
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, DefectClass, Image

__all__ = ["describe_image", "list_images", "set_image_class"]

logger = logging.getLogger(__name__)


def list_images(workspace: Workspace, project_name: str, *, unlabeled: bool = False,
                source: str | None = None) -> list[dict[str, Any]]:
    """Return the project's images, in id order, as dicts (see ``describe_image``).

    Args:
        unlabeled: Only images without any label.
        source: Only images whose metadata ``source`` is this (``production`` for captured images).
    """
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        images = session.scalars(select(Image).where(Image.project_id == project.id).order_by(Image.id)).all()
        rows = [describe_image(image) for image in images]
    if unlabeled:
        rows = [row for row in rows if row["label"] is None]
    if source is not None:
        rows = [row for row in rows if row["metadata"].get("source") == source]
    return rows


def describe_image(image: Image) -> dict[str, Any]:
    """Return an image's id, path, split, label, version and metadata."""
    return {"id": image.id, "path": image.path, "split": image.split, "label": image_label(image.annotations),
            "version": image.version, "metadata": dict(image.meta or {})}


def set_image_class(workspace: Workspace, project_name: str, image_id: int, class_name: str, *,
                    labeler: str, version: int | None = None) -> dict[str, Any]:
    """Give an image an image-level class, replacing the class this labeler gave it before.

    The no-defect names import accepts for ``ok`` (``good``, ``OK``, ``MT_Free``...) mean ``ok`` here too.

    Args:
        version: The image version the change was based on; a different current
            version means someone changed the image since, and nothing is saved.

    Raises:
        NotFoundError: The project or image does not exist.
        InvalidInputError: The class is not one of the project's classes.
        ConflictError: ``version`` is not the image's current version.
    """
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        image = session.get(Image, image_id)
        if image is None or image.project_id != project.id:
            raise NotFoundError(f"image {image_id} is not in project {project_name!r}; list them with "
                                f"'defectlab images {project_name}'")
        if version is not None and version != image.version:
            raise ConflictError(f"image {image_id} is at version {image.version}, not {version}: someone changed it "
                                "since; look at it again and repeat the change")
        if is_ok_folder(class_name):
            class_name = OK_CLASS
        defect_class = session.scalar(select(DefectClass).where(DefectClass.project_id == project.id,
                                                                DefectClass.name == class_name))
        if defect_class is None:
            known = ", ".join(sorted(c.name for c in project.classes))
            raise InvalidInputError(f"class {class_name!r} is not in project {project_name!r}; use one of: {known}")
        image.annotations = [a for a in image.annotations if not (a.kind == "class" and a.labeler == labeler)]
        image.annotations.append(Annotation(defect_class=defect_class, labeler=labeler, kind="class"))
        image.version += 1
        session.flush()
        logger.info("image %d of %s labeled %s by %s", image_id, project_name, class_name, labeler)
        return describe_image(image)
