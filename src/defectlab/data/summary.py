"""Counts that describe projects at a glance."""

from __future__ import annotations

from sqlalchemy import func, select

from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, Image, Model, Project

__all__ = ["summarize_models", "summarize_projects"]


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


def summarize_models(workspace: Workspace, project_name: str) -> list[dict]:
    """Return one row per model of a project, newest last."""
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        models = session.scalars(select(Model).where(Model.project_id == project.id).order_by(Model.id))
        return [
            {"id": model.id, "task": model.task, "created_at": model.created_at.isoformat(timespec="seconds"),
             "snapshot_id": model.snapshot_id, "threshold": model.summary.get("threshold"),
             "class_names": model.summary.get("class_names"), "evaluations": model.summary.get("evaluations", {}),
             # Models trained before loss curves were kept in the summary have them in their artifact only.
             "loss_curves": model.summary.get("loss_curves", {}),
             # None for a model trained outside a training job, which is not diagnosed.
             "diagnosis": model.summary.get("diagnosis")}
            for model in models
        ]
