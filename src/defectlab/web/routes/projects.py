"""Routes for projects, their defect classes and the agreement between everyone who labeled their images."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from defectlab.data.summary import summarize_projects
from defectlab.quality.agreement import collect_labels, measure_agreement
from defectlab.web.access import Owner, Reviewer
from defectlab.web.bodies import NewClasses, NewProject
from defectlab.web.routes import WorkspaceParameter, error_responses
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Project

__all__ = ["router"]

router = APIRouter(prefix="/projects", tags=["projects"],
                   responses=error_responses(400, 401, 403, 404))


@router.get("", summary="List the projects with their task type, classes and counts")
def list_projects(workspace: WorkspaceParameter) -> list[dict[str, Any]]:
    """Return each project: `name`, `task`, `classes`, and how many `images`, `labeled` images and `models` it has."""
    return describe_projects(workspace)


@router.post("", status_code=201, summary="Create a project", responses=error_responses(409))
def create_project(body: NewProject, workspace: WorkspaceParameter, account: Owner) -> dict[str, Any]:
    """Create a project with its task type; the `ok` class comes first, then `classes`."""
    workspace.create_project(body.name, body.task, body.classes)
    return describe_project(workspace, body.name)


@router.get("/{project}", summary="Describe one project")
def read_project(project: str, workspace: WorkspaceParameter) -> dict[str, Any]:
    return describe_project(workspace, project)


@router.post("/{project}/classes", summary="Add defect classes to a project")
def add_classes(project: str, body: NewClasses, workspace: WorkspaceParameter,
                account: Reviewer) -> dict[str, Any]:
    """Return the classes `added` (those the project had already are left alone) and all its `classes`."""
    added = workspace.add_classes(project, body.names)
    return {"added": added, "classes": describe_project(workspace, project)["classes"]}


@router.get("/{project}/agreement", summary="Measure how far labelers agree on the project's image classes")
def measure_project_agreement(
    project: str,
    workspace: WorkspaceParameter,
    labeler: Annotated[list[str] | None, Query(description="A labeler to compare; repeat for each "
                                                           "(default: everyone who labeled).")] = None,
) -> dict[str, Any]:
    """Return Krippendorff's alpha overall and per class, Cohen's kappa per pair, each labeler's escape and overkill
    rates, and the least agreed images. It compares the project's labels; the annotations made inside a
    labeling task are compared by the task's own agreement route."""
    return measure_agreement(collect_labels(workspace, project, labelers=labeler))


def describe_projects(workspace: Workspace) -> list[dict[str, Any]]:
    """Return the summary of every project (``summarize_projects``) with its class names, in class order."""
    with workspace.session() as session:
        classes = {project.name: [c.name for c in project.classes] for project in session.scalars(select(Project))}
    return [{**row, "classes": classes.get(row["name"], [])} for row in summarize_projects(workspace)]


def describe_project(workspace: Workspace, name: str) -> dict[str, Any]:
    """Return one project's summary with its class names.

    Raises:
        NotFoundError: No project has this name.
    """
    workspace.require_project(name)
    return next(row for row in describe_projects(workspace) if row["name"] == name)
