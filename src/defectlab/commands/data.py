"""CLI commands for projects, import and export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from defectlab.cli import app, confirm, echo_json, flag, open_workspace, project_app

# Kept as text so that help does not import the format readers; a test checks
# that it names every format in ``defectlab.formats.FORMATS``.
FORMAT_NAMES = "native, folders, masks, mvtec, yolo, coco or voc"

ProjectArgument = Annotated[str, typer.Argument(metavar="PROJECT", help="Name of the project.", show_default=False)]


@project_app.command("create")
def create_project(
    name: Annotated[str, typer.Argument(metavar="NAME", help=(
        "Name of the new project: letters, digits, spaces, '.', '_' or '-', with no space at either end."))],
    task: Annotated[str, typer.Option(help="classification, anomaly, segmentation or detection.")],
    classes: Annotated[Optional[list[str]], typer.Option(
        "--class", help="A defect class to start with; repeat for each (import adds the classes it finds).")] = None,
) -> None:
    """Create a project for one inspection task."""
    project = open_workspace().create_project(name, task, classes)
    typer.echo(f"created project {project.name!r} ({project.task})" + (f" with classes {', '.join(classes)}"
                                                                        if classes else ""))


@project_app.command("add-class")
def add_class(
    project: ProjectArgument,
    names: Annotated[list[str], typer.Argument(metavar="CLASS...", help="Defect classes to add.")],
) -> None:
    """Add defect classes to a project."""
    added = open_workspace().add_classes(project, names)
    typer.echo(f"added {', '.join(added)}" if added else "the project has these classes already")


@project_app.command("list")
def list_projects(as_json: Annotated[bool, flag("--json", help="Print JSON.")] = False) -> None:
    """List the workspace's projects."""
    from defectlab.data.summary import summarize_projects

    rows = summarize_projects(open_workspace())
    if as_json:
        echo_json(rows)
        return
    if not rows:
        typer.echo("no projects yet; create one with 'defectlab project create NAME --task TASK'")
    for row in rows:
        models = "1 model" if row["models"] == 1 else f"{row['models']} models"
        typer.echo(f"{row['name']}  {row['task']}  {row['images']} images, {row['labeled']} labeled, {models}")


@project_app.command("delete")
def delete_project(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Name of the project to delete.")],
    yes: Annotated[bool, flag("--yes", help="Delete without asking for confirmation.")] = False,
) -> None:
    """Delete a project with its images, labels and models."""
    workspace = open_workspace()
    workspace.require_project(name)
    if not yes:
        confirm(
            f"Delete project {name!r} with all its images, labels and models?",
            refusal=f"deleting project {name!r} needs a confirmation, and stdin is not a terminal to ask on; "
                    "rerun with --yes to delete it",
        )
    workspace.delete_project(name)
    typer.echo(f"deleted project {name!r}")


@app.command("import")
def import_data(
    project: ProjectArgument,
    path: Annotated[Path, typer.Argument(metavar="PATH", help=(
        "Dataset folder, or a COCO JSON, YOLO data.yaml or defectlab.json file."))],
    format: Annotated[Optional[str], typer.Option(
        help=f"Dataset format: {FORMAT_NAMES}. Detected from the files when omitted.")] = None,
    split: Annotated[Optional[str], typer.Option(help="Split for images whose source names none: train, dev or test.")] = None,
    metadata: Annotated[Optional[Path], typer.Option(help="CSV with a 'path' column and one column per metadata key.")] = None,
    as_json: Annotated[bool, flag("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import images and labels from a folder or label file.

    Files that cannot be imported (an image that does not decode, an invalid
    label line) are skipped one by one and listed as errors. Corrected ones
    (a clipped box) are listed as warnings. The exit status is 0 whenever the
    import ran, even with such problems, so check the list (or 'problems' in
    the JSON). It is 2 when nothing was imported because the path, format,
    split or metadata file is invalid, and 3 when the project does not exist.
    """
    from defectlab.data.importer import import_path

    report = import_path(open_workspace(), project, path, format=format, split=split, metadata_csv=metadata)
    if as_json:
        echo_json(report.to_dict())
        return
    typer.echo(f"imported {path} (format: {report.format}): {report.added} added, {report.updated} updated, "
               f"{report.unchanged} unchanged, {report.skipped} skipped")
    typer.echo("per class (images): " + _counts(report.per_class))
    if report.regions_per_class:
        typer.echo("regions per class: " + _counts(report.regions_per_class))
    typer.echo("per split: " + _counts(report.per_split))
    for problem in report.problems:
        typer.echo(str(problem))


@app.command("export")
def export_data(
    project: ProjectArgument,
    out: Annotated[Path, typer.Argument(metavar="OUT", help="New or empty folder to write the dataset to.")],
    format: Annotated[str, typer.Option(help=f"Dataset format to write: {FORMAT_NAMES}.")] = "native",
    yes: Annotated[bool, flag("--yes", help="Write even when the format cannot hold every label.")] = False,
) -> None:
    """Export a project's images and labels to a folder in a given format.

    What the format cannot hold is listed first. With a terminal, you are
    asked whether to write anyway; without one (a script), the export stops
    with exit status 2 unless --yes is given.
    """
    from defectlab.data.exporter import export_project, plan_export
    from defectlab.formats import describe_notes

    export_set, losses = plan_export(open_workspace(), project, format)
    for loss in losses:
        typer.echo(f"warning: {loss}", err=True)
    if losses and not yes:
        confirm(
            f"The {format} format cannot hold everything listed above. Write anyway?",
            refusal=f"the {format} format cannot hold everything listed above, and stdin is not a terminal to ask "
                    "on; rerun with --yes to write anyway, or choose another --format (native keeps everything)",
        )
    problems = export_project(export_set, out, format)
    for problem in problems:
        typer.echo(str(problem), err=True)
    for note in describe_notes(export_set, format):
        typer.echo(f"note: {note}")
    typer.echo(f"exported {len(export_set.images)} images of {project!r} as {format} to {out}")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items())) or "none"
