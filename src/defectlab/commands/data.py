"""CLI commands for projects, import and export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from defectlab.cli import app, echo_json, open_workspace, project_app


@project_app.command("create")
def create_project(
    name: str,
    task: Annotated[str, typer.Option(help="classification, anomaly, segmentation or detection.")],
) -> None:
    """Create a project for one inspection task."""
    project = open_workspace().create_project(name, task)
    typer.echo(f"created project {project.name!r} ({project.task})")


@project_app.command("list")
def list_projects(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the workspace's projects."""
    from defectlab.data.summary import summarize_projects

    rows = summarize_projects(open_workspace())
    if as_json:
        echo_json(rows)
        return
    if not rows:
        typer.echo("no projects yet; create one with 'defectlab project create NAME --task TASK'")
    for row in rows:
        typer.echo(f"{row['name']}  {row['task']}  {row['images']} images, {row['labeled']} labeled, "
                   f"{row['models']} models")


@project_app.command("delete")
def delete_project(name: str, yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False) -> None:
    """Delete a project with its images, labels and models."""
    if not yes:
        typer.confirm(f"Delete project {name!r} with all its images, labels and models?", abort=True)
    open_workspace().delete_project(name)
    typer.echo(f"deleted project {name!r}")


@app.command("import")
def import_data(
    project: str,
    path: Path,
    format: Annotated[Optional[str], typer.Option(
        help="folders, masks, mvtec, yolo, coco, voc or native (detected when omitted).")] = None,
    split: Annotated[Optional[str], typer.Option(help="Split for images whose source names none: train, dev or test.")] = None,
    metadata: Annotated[Optional[Path], typer.Option(help="CSV with a 'path' column and one column per metadata key.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import images and labels from a folder or label file."""
    from defectlab.data.importer import import_path

    report = import_path(open_workspace(), project, path, format=format, split=split, metadata_csv=metadata)
    if as_json:
        echo_json(report.to_dict())
        return
    typer.echo(f"imported {path} as {report.format}: {report.added} added, {report.updated} updated, "
               f"{report.unchanged} unchanged, {report.skipped} not imported")
    typer.echo("per class: " + ", ".join(f"{name} {count}" for name, count in sorted(report.per_class.items())))
    typer.echo("per split: " + ", ".join(f"{name} {count}" for name, count in sorted(report.per_split.items())))
    for problem in report.problems:
        typer.echo(str(problem))


@app.command("export")
def export_data(
    project: str,
    out: Path,
    format: Annotated[str, typer.Option(help="folders, masks, yolo, coco, voc or native.")] = "native",
    yes: Annotated[bool, typer.Option("--yes", help="Write even when the format drops some labels.")] = False,
) -> None:
    """Export a project's images and labels to a folder in a given format."""
    from defectlab.data.exporter import export_project, plan_export

    workspace = open_workspace()
    export_set, losses = plan_export(workspace, project, format)
    for loss in losses:
        typer.echo(f"warning: {loss}", err=True)
    if losses and not yes:
        typer.confirm(f"The {format} format cannot hold everything listed above. Write anyway?", abort=True)
    problems = export_project(export_set, out, format)
    for problem in problems:
        typer.echo(str(problem), err=True)
    typer.echo(f"exported {len(export_set.images)} images of {project!r} as {format} to {out}")
