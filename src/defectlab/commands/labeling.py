"""CLI commands for looking at images, labeling them one at a time and choosing which to label next."""

from __future__ import annotations

import getpass
from typing import Annotated, Optional

import typer

from defectlab.cli import app, echo_json, flag, open_workspace
from defectlab.commands.data import ProjectArgument


@app.command("images")
def list_images(
    project: ProjectArgument,
    unlabeled: Annotated[bool, flag("--unlabeled", help="Only images without a label.")] = False,
    source: Annotated[Optional[str], typer.Option(help="Only images from this source, such as 'production'.")] = None,
    as_json: Annotated[bool, flag("--json", help="Print one JSON object a line.")] = False,
) -> None:
    """List a project's images with their ids, splits and labels."""
    from defectlab.data.labels import list_images as rows_of

    for row in rows_of(open_workspace(), project, unlabeled=unlabeled, source=source):
        if as_json:
            echo_json(row)
            continue
        prediction = row["metadata"].get("prediction")
        predicted = f"  predicted {prediction['label']} ({prediction['score']:.3f})" if prediction else ""
        typer.echo(f"{row['id']:>6}  {row['split'] or '-':<5}  {row['label'] or 'unlabeled':<12}  {row['path']}{predicted}")


@app.command("label")
def label_image(
    project: ProjectArgument,
    image: Annotated[int, typer.Argument(help="Image id, as 'defectlab images' prints it.")],
    class_name: Annotated[str, typer.Argument(metavar="CLASS", help="Class to give the image, such as ok or scratch.")],
    labeler: Annotated[Optional[str], typer.Option(help="Who labels (default: the login name).")] = None,
    version: Annotated[Optional[int], typer.Option(
        help="Image version the label is based on; the label is rejected if the image changed since.")] = None,
) -> None:
    """Give one image an image-level class."""
    from defectlab.data.labels import set_image_class

    row = set_image_class(open_workspace(), project, image, class_name, labeler=labeler or login_name(),
                          version=version)
    typer.echo(f"image {row['id']} is now {row['label']} (version {row['version']})")


@app.command("suggest")
def suggest(
    project: ProjectArgument,
    count: Annotated[int, typer.Option(help="How many images to suggest.")] = 20,
    model: Annotated[Optional[int], typer.Option(help="Model id to rank with (default: the project's newest).")] = None,
    as_json: Annotated[bool, flag("--json", help="Print one JSON object a line.")] = False,
) -> None:
    """Rank unlabeled images by how much labeling them should help: uncertain first, no near copies."""
    from defectlab.data.suggest import suggest_images

    rows = suggest_images(open_workspace(), project, count=count, model_id=model)
    if not rows and not as_json:
        typer.echo(f"project {project!r} has no unlabeled images")
    for row in rows:
        if as_json:
            echo_json(row)
        else:
            typer.echo(f"{row['rank']:>3}. image {row['image_id']:>6}  predicted {row['label']} ({row['score']:.3f})  "
                       f"uncertainty {row['uncertainty']:.2f}, diversity {row['diversity']:.2f}  {row['path']}")


def login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


@app.command("agreement")
def agreement(
    project: ProjectArgument,
    labelers: Annotated[Optional[list[str]], typer.Option(
        "--labeler", help="A labeler to compare; repeat for each (default: everyone who labeled).")] = None,
    as_json: Annotated[bool, flag("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Measure how far labelers agree on image classes, and each labeler's escapes and overkills."""
    from defectlab.quality.agreement import collect_labels, measure_agreement

    result = measure_agreement(collect_labels(open_workspace(), project, labelers=labelers))
    if as_json:
        echo_json(result)
        return
    print_agreement(result)


def print_agreement(result: dict) -> None:
    """Print alpha, kappa per pair, each labeler's escape and overkill rates and the least agreed images."""
    typer.echo(f"{len(result['labelers'])} labelers, {result['images_with_two_or_more_labels']} images labeled by two "
               f"or more; Krippendorff's alpha {_figure(result['alpha'])}")
    for pair in result["kappa_by_pair"]:
        typer.echo(f"  Cohen's kappa {pair['labelers'][0]} / {pair['labelers'][1]}: {_figure(pair['kappa'])} "
                   f"on {pair['images']} images")
    typer.echo("Against the consensus (a reviewer's decision, else the other labelers' majority):")
    for row in result["by_labeler"]:
        typer.echo(f"  {row['labeler']:<16} escape rate {_percent(row['escape_rate'])}, overkill rate "
                   f"{_percent(row['overkill_rate'])}, {row['images_compared']} images compared")
    disputed = [row for row in result["least_agreed"] if row["agreement"] < 1.0]
    typer.echo(f"{len(disputed)} images where labelers disagree" + (", least agreed first:" if disputed else ""))
    for row in disputed[:20]:
        labels = ", ".join(f"{name}: {label}" for name, label in row["labels"].items())
        typer.echo(f"  image {row['image_id']:>6}  {row['path']}  ({labels})")


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


@app.command("check")
def check(
    project: ProjectArgument,
    skip_labels: Annotated[bool, flag("--skip-labels", help="Leave out the search for suspicious labels (the slowest part).")] = False,
    as_json: Annotated[bool, flag("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Find data issues: suspicious labels, duplicates, leakage, imaging problems, outliers, thin classes."""
    from defectlab.quality.check import check_project

    report = check_project(open_workspace(), project, labels=not skip_labels)
    if as_json:
        echo_json(report)
        return
    counts = ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in report["counts"].items()) or "no issues"
    typer.echo(f"{report['images']} images checked: {counts}")
    for note in report.get("notes", []):
        typer.echo(f"  note: {note}")
    shown = 0
    for kind in report["counts"]:
        rows = [issue for issue in report["issues"] if issue["kind"] == kind]
        for issue in rows[:PER_KIND]:
            where = f"image {issue['image_id']} {issue['path']}" if "image_id" in issue else f"class {issue['class']}"
            typer.echo(f"  [{issue['kind']}] {where}: {issue['detail']}; {issue['action']}")
        shown += min(len(rows), PER_KIND)
    if len(report["issues"]) > shown:
        typer.echo(f"  ... and {len(report['issues']) - shown} more (worst {PER_KIND} of each kind shown); "
                   "use --json for all")


PER_KIND = 15
"""Issues of each kind that 'defectlab check' prints, worst first."""
