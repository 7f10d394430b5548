"""Counts that describe projects at a glance."""

from __future__ import annotations

from sqlalchemy import func, select

from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, Image, Model, Project

__all__ = ["summarize_projects"]


def summarize_projects(workspace: Workspace) -> list[dict]:
    """Return one row per project: name, task, images, labeled images and models."""
    with workspace.session() as session:
        rows = []
        for project in session.scalars(select(Project).order_by(Project.name)):
            images = session.scalar(select(func.count(Image.id)).where(Image.project_id == project.id))
            labeled = session.scalar(
                select(func.count(func.distinct(Annotation.image_id)))
                .join(Image, Image.id == Annotation.image_id).where(Image.project_id == project.id)
            )
            models = session.scalar(select(func.count(Model.id)).where(Model.project_id == project.id))
            rows.append({"name": project.name, "task": project.task, "images": images,
                         "labeled": labeled, "models": models})
    return rows
