"""Export a project's images and labels through a format writer."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from defectlab.data.regions import png_to_mask
from defectlab.data.snapshot import class_label
from defectlab.formats import describe_losses, write_dataset
from defectlab.formats.export import ExportSet
from defectlab.formats.records import ClassSpec, ExportImage, Problem, Region
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, Image

__all__ = ["export_project", "plan_export"]

logger = logging.getLogger(__name__)


def plan_export(workspace: Workspace, project_name: str, format: str) -> tuple[ExportSet, list[str]]:
    """Collect what an export writes and list what ``format`` cannot hold, before anything is written."""
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        classes = [ClassSpec(c.name, c.external_id) for c in project.classes]
        images = session.scalars(
            select(Image).where(Image.project_id == project.id).order_by(Image.path)
            .options(selectinload(Image.annotations).selectinload(Annotation.defect_class))
        ).all()
        export_images = [_export_image(workspace, image) for image in images]
    export_set = ExportSet(classes=classes, images=export_images)
    return export_set, describe_losses(export_set, format)


def export_project(export_set: ExportSet, out: Path, format: str) -> list[Problem]:
    problems = write_dataset(export_set, out, format)
    logger.info("exported %d images as %s to %s", len(export_set.images), format, out)
    return problems


def _export_image(workspace: Workspace, image: Image) -> ExportImage:
    label = class_label(image.annotations)
    regions = [_region(workspace, a) for a in image.annotations if a.kind != "class"]
    return ExportImage(
        path=image.path, source=workspace.blobs.path_of(image.sha256), width=image.width, height=image.height,
        split=image.split, label=label, regions=regions, labeled=bool(image.annotations),
        metadata=dict(image.meta or {}),
    )


def _region(workspace: Workspace, annotation: Annotation) -> Region:
    name = annotation.defect_class.name
    if annotation.kind == "box":
        return Region("box", name, box=tuple(annotation.geometry))
    if annotation.kind == "polygon":
        return Region("polygon", name, polygon=list(annotation.geometry))
    return Region("mask", name, mask=png_to_mask(workspace.blobs.get(annotation.mask_sha256)))
