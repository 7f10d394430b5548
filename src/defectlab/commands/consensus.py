"""CLI commands for labeling tasks done by several people, their review, and the defect book."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from defectlab.cli import app, echo_json, flag, open_workspace
from defectlab.commands.data import ProjectArgument
from defectlab.commands.labeling import login_name, print_agreement
from defectlab.errors import InvalidInputError

task_app = typer.Typer(help="Labeling tasks: the same images labeled blind by 2 to 5 people, then reviewed.",
                       no_args_is_help=True)
book_app = typer.Typer(help="The defect book: each class's definition, decision rule and example images.",
                       no_args_is_help=True)
app.add_typer(task_app, name="task")
app.add_typer(book_app, name="book")

TaskArgument = Annotated[str, typer.Argument(metavar="TASK", help="Labeling task name.")]
ImageArgument = Annotated[int, typer.Argument(help="Image id, as 'defectlab images' prints it.")]
LabelerOption = Annotated[str, typer.Option(help="Your labeler name, as the task lists it.")]
JsonFlag = Annotated[bool, flag("--json", help="Print the result as JSON.")]


@task_app.command("create")
def create(
    project: ProjectArgument,
    name: TaskArgument,
    labelers: Annotated[list[str], typer.Option("--labeler", help="A labeler's name; repeat for each (2 to 5).")],
    unlabeled: Annotated[bool, flag("--unlabeled", help="Only images without a label.")] = False,
    count: Annotated[Optional[int], typer.Option(help="Draw this many images at random.")] = None,
    image: Annotated[Optional[list[int]], typer.Option(help="An image id to include; repeat for each.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random draw and order.")] = 0,
) -> None:
    """Hand the same images to several labelers, who label them without seeing each other's labels."""
    from defectlab.consensus import create_task

    task = create_task(open_workspace(), project, name, labelers, created_by=login_name(), image_ids=image,
                       unlabeled=unlabeled, count=count, seed=seed)
    typer.echo(f"task {task['name']}: {task['images']} images for {', '.join(task['labelers'])}. Each labeler "
               f"runs 'defectlab task next {project} {task['name']} --labeler NAME'")


@task_app.command("list")
def list_all(project: ProjectArgument, as_json: JsonFlag = False) -> None:
    """List the project's labeling tasks with each labeler's progress."""
    from defectlab.consensus import list_tasks

    tasks = list_tasks(open_workspace(), project)
    if not tasks and not as_json:
        typer.echo(f"project {project!r} has no labeling tasks; create one with 'defectlab task create'")
    for task in tasks:
        if as_json:
            echo_json(task)
            continue
        progress = ", ".join(f"{name} {p['done']}/{task['images']}" for name, p in task["progress"].items())
        typer.echo(f"{task['name']}: {task['images']} images, settled {task['settled']}; {progress}")


@task_app.command("next")
def next_one(project: ProjectArgument, task: TaskArgument, labeler: LabelerOption, as_json: JsonFlag = False) -> None:
    """Show your next image to label in the task (others' labels stay hidden)."""
    from defectlab.consensus import next_image

    row = next_image(open_workspace(), project, task, labeler)
    if as_json:
        echo_json(row)
    elif row is None:
        typer.echo(f"{labeler} has labeled every image of task {task}")
    else:
        typer.echo(f"image {row['image_id']}  {row['path']}  ({row['width']}x{row['height']}), "
                   f"{row['position']} of {row['images']}, {row['left']} left")


@task_app.command("label")
def label(
    project: ProjectArgument,
    task: TaskArgument,
    image: ImageArgument,
    labeler: LabelerOption,
    class_name: Annotated[Optional[str], typer.Option(
        "--class", help="Class of the whole image (ok when it has no defect).")] = None,
    regions: Annotated[Optional[str], typer.Option(
        help='Regions as JSON: [{"class": "scratch", "box": [x0, y0, x1, y1]}, {"class": ..., "polygon": [...]}].')]
    = None,
) -> None:
    """Label one image of the task, replacing your earlier label of it."""
    from defectlab.consensus import annotate

    shapes = _parse_regions(regions) if regions is not None else None
    rows = annotate(open_workspace(), project, task, image, labeler, class_name=class_name, regions=shapes)
    typer.echo(f"image {image} labeled by {labeler}: " + ", ".join(_describe(row) for row in rows))


@task_app.command("import")
def import_work(
    project: ProjectArgument,
    task: TaskArgument,
    path: Annotated[Path, typer.Argument(help="Dataset folder or label file with this labeler's labels.")],
    labeler: LabelerOption,
    format: Annotated[Optional[str], typer.Option(help="Dataset format (detected when not given).")] = None,
) -> None:
    """Bring in a labeler's labels of the task's images from another tool, in any format import reads."""
    from defectlab.consensus import import_labeler_work

    report = import_labeler_work(open_workspace(), project, task, labeler, path, format=format)
    typer.echo(f"{report.labeled} images of task {task} labeled by {labeler} ({report.regions} regions)")
    for problem in report.problems:
        typer.echo(f"  {problem}", err=True)


@task_app.command("agreement")
def agreement(project: ProjectArgument, task: TaskArgument, as_json: JsonFlag = False) -> None:
    """Measure how far the task's labelers agree, and each labeler's escapes and overkills."""
    from defectlab.consensus import task_agreement

    result = task_agreement(open_workspace(), project, task)
    if as_json:
        echo_json(result)
        return
    progress = ", ".join(f"{name} {p['done']}/{result['task']['images']}"
                         for name, p in result["task"]["progress"].items())
    typer.echo(f"task {task}: {progress}; settled {result['task']['settled']}")
    print_agreement(result["classes"])
    if "regions" in result:
        _print_regions(result["regions"])


@task_app.command("review")
def review(project: ProjectArgument, task: TaskArgument, as_json: JsonFlag = False) -> None:
    """Show every image of the task with all labels, unsettled and least agreed first."""
    from defectlab.consensus import review_task

    for row in review_task(open_workspace(), project, task):
        if as_json:
            echo_json(row)
            continue
        labels = ", ".join(f"{name}: {label}" + (f" ({row['regions'][name]} regions)" if row["regions"][name] else "")
                           for name, label in row["labels"].items()) or "not labeled yet"
        decision = row["decision"]
        settled = f"  -> {decision['outcome']} {decision['class']} by {decision['reviewer']}" if decision else ""
        typer.echo(f"image {row['image_id']:>6}  {row['path']}  ({labels}){settled}")


@task_app.command("settle")
def settle(
    project: ProjectArgument,
    task: TaskArgument,
    image: ImageArgument,
    class_name: Annotated[Optional[str], typer.Option("--class", help="The final class of the image.")] = None,
    labeler: Annotated[Optional[str], typer.Option(
        "--take", help="Keep this labeler's label (and regions) as the final one.")] = None,
    ambiguous: Annotated[bool, flag("--ambiguous", help=(
        "The image is ambiguous: add it to the defect book as a borderline example of --class."))] = False,
    note: Annotated[Optional[str], typer.Option(help="Why; kept with the decision and in the defect book.")] = None,
    reviewer: Annotated[Optional[str], typer.Option(help="Who decides (default: the login name).")] = None,
) -> None:
    """Settle one image of the task: pick the final label, or mark it ambiguous."""
    from defectlab.consensus import settle as settle_image

    row = settle_image(open_workspace(), project, task, image, reviewer=reviewer or login_name(),
                       class_name=class_name, labeler=labeler, ambiguous=ambiguous, note=note)
    if row["outcome"] == "ambiguous":
        typer.echo(f"image {image} is a borderline example of {row['class']} in the defect book")
    else:
        typer.echo(f"image {image} is now labeled {row['class']}")


@task_app.command("settle-agreed")
def settle_agreed(
    project: ProjectArgument,
    task: TaskArgument,
    reviewer: Annotated[Optional[str], typer.Option(help="Who decides (default: the login name).")] = None,
) -> None:
    """Settle, in one step, every image that all the task's labelers labeled alike."""
    from defectlab.consensus import settle_agreed as settle_all

    counts = settle_all(open_workspace(), project, task, reviewer=reviewer or login_name())
    typer.echo(f"{counts['settled']} images settled; {counts['left']} left to review with "
               f"'defectlab task review {project} {task}'")


@book_app.command("show")
def show(
    project: ProjectArgument,
    class_name: Annotated[Optional[str], typer.Argument(metavar="CLASS", help="One class (default: all).")] = None,
    version: Annotated[Optional[int], typer.Option(help="An older version of the class's entry.")] = None,
    history: Annotated[bool, flag("--history", help="List every version of the class's entry.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show the defect book: definitions, decision rules and example images."""
    from defectlab.book import entry_history, read_book, read_entry

    workspace = open_workspace()
    if history:
        if class_name is None:
            raise InvalidInputError("--history needs a CLASS")
        for row in entry_history(workspace, project, class_name):
            echo_json(row) if as_json else typer.echo(
                f"version {row['version']}  {row['created_at'][:19]}  {row['author']}: {row['change']}")
        return
    entries = ([read_entry(workspace, project, class_name, version=version)] if class_name
               else read_book(workspace, project))
    for entry in entries:
        echo_json(entry) if as_json else _print_entry(entry)


@book_app.command("define")
def define(
    project: ProjectArgument,
    class_name: Annotated[str, typer.Argument(metavar="CLASS", help="The class to describe.")],
    definition: Annotated[Optional[str], typer.Option(help="What the defect is, in words.")] = None,
    min_length: Annotated[Optional[float], typer.Option(help="Smallest length that is a defect.")] = None,
    min_area: Annotated[Optional[float], typer.Option(help="Smallest area that is a defect.")] = None,
    unit: Annotated[Optional[str], typer.Option(help="Unit of the sizes: px or mm.")] = None,
    pixel_size: Annotated[Optional[float], typer.Option(help="Millimetres per pixel, for sizes in mm.")] = None,
    based_on: Annotated[Optional[int], typer.Option(
        help="Version the change is based on; rejected if the entry changed since.")] = None,
    author: Annotated[Optional[str], typer.Option(help="Who changes it (default: the login name).")] = None,
) -> None:
    """Write or change a class's definition and decision rule; every change is a new version."""
    from defectlab.book import update_entry

    rule = {key: value for key, value in (("min_length", min_length), ("min_area", min_area), ("unit", unit),
                                          ("pixel_size_mm", pixel_size)) if value is not None}
    entry = update_entry(open_workspace(), project, class_name, author=author or login_name(),
                         definition=definition, rule=rule or None, based_on=based_on)
    typer.echo(f"{class_name}: version {entry['version']} ({entry['change']})")


@book_app.command("example")
def example(
    project: ProjectArgument,
    class_name: Annotated[str, typer.Argument(metavar="CLASS", help="The class the image illustrates.")],
    image: ImageArgument,
    role: Annotated[str, typer.Option(help="example, counter_example or borderline.")] = "example",
    note: Annotated[Optional[str], typer.Option(help="What to look at in the image.")] = None,
    remove: Annotated[bool, flag("--remove", help="Unlink the image instead.")] = False,
    author: Annotated[Optional[str], typer.Option(help="Who changes it (default: the login name).")] = None,
) -> None:
    """Link an image to a class as an example, counter-example or borderline case."""
    from defectlab.book import add_example, remove_example

    who = author or login_name()
    entry = (remove_example(open_workspace(), project, class_name, image, author=who) if remove else
             add_example(open_workspace(), project, class_name, image, role=role, author=who, note=note))
    typer.echo(f"{class_name}: version {entry['version']} ({entry['change']})")


def _parse_regions(text: str) -> list[dict[str, Any]]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"--regions is not valid JSON ({error.msg} at character {error.pos}); give a list "
                                'such as [{"class": "scratch", "box": [10, 10, 40, 30]}]') from None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidInputError('--regions must be a JSON list of objects such as {"class": "scratch", "box": [...]}')
    return value


def _describe(row: dict[str, Any]) -> str:
    if row["kind"] == "class":
        return row["class"]
    return f"{row['class']} {row['kind']} {row.get(row['kind'])}"


def _print_regions(result: dict[str, Any]) -> None:
    typer.echo(f"Regions: mean agreement {_figure(result['mean_agreement'])} on "
               f"{result['images_with_two_or_more_labels']} images labeled by two or more")
    for row in result["by_labeler"]:
        typer.echo(f"  {row['labeler']:<16} regions missed {_percent(row['regions_missed_rate'])}, extra regions "
                   f"{_percent(row['extra_regions_rate'])}, escape rate {_percent(row['escape_rate'])}, "
                   f"overkill rate {_percent(row['overkill_rate'])}")


def _print_entry(entry: dict[str, Any]) -> None:
    typer.echo(f"{entry['class']} (version {entry['version']}"
               + (f", {entry['author']} {entry['created_at'][:10]})" if entry["author"] else ")"))
    typer.echo(f"  definition: {entry['definition'] or '(none yet)'}")
    rule = entry["rule"]
    unit = rule.get("unit", "px")
    parts = [f"{name.replace('min_', 'minimum ')} {rule[name]:g} {unit}{'²' if name == 'min_area' else ''}"
             for name in ("min_length", "min_area") if name in rule]
    if "pixel_size_mm" in rule:
        parts.append(f"{rule['pixel_size_mm']:g} mm per pixel")
    typer.echo(f"  decision rule: {', '.join(parts) or '(none yet)'}")
    for row in entry["examples"]:
        typer.echo(f"  {row['role'].replace('_', '-')}: image {row['image_id']} {row['path']}"
                   + (f" ({row['note']})" if row["note"] else ""))


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
