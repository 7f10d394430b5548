"""CLI commands for proposed labels: make them, review them one at a time, and see how often they were right."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from defectlab.cli import app, echo_json, flag, open_workspace
from defectlab.commands.data import ProjectArgument
from defectlab.commands.labeling import login_name
from defectlab.commands.progress import ProgressBar

proposals_app = typer.Typer(help="Proposed labels of unlabeled images: review, accept, correct or reject them.",
                            no_args_is_help=True)
app.add_typer(proposals_app, name="proposals")

ProposalArgument = Annotated[int, typer.Argument(help="Proposal id, as 'defectlab proposals list' prints it.")]
ReviewerOption = Annotated[Optional[str], typer.Option(help="Who reviews (default: the login name).")]


@app.command("propose")
def propose(
    project: ProjectArgument,
    source: Annotated[str, typer.Option(
        "--from", help="auto (the newest model if no label changed since it was trained, else features), "
                       "features (few-shot, from the labels of now) or model.")] = "auto",
    model: Annotated[Optional[int], typer.Option(help="Model id to propose with (default: the newest).")] = None,
    blind_share: Annotated[float, typer.Option(help="Share of proposals kept hidden as blind checks.")] = 0.1,
    as_json: Annotated[bool, flag("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Propose a label for every unlabeled image; a person reviews each before it becomes a label."""
    from defectlab.proposals import make_proposals

    bar = ProgressBar()
    try:
        summary = make_proposals(open_workspace(), project, source=source, model_id=model, blind_share=blind_share,
                                 progress=bar)
    finally:
        bar.close()
    if as_json:
        echo_json(summary)
        return
    classes = ", ".join(f"{name} {count}" for name, count in sorted(summary["by_class"].items()))
    typer.echo(f"proposed labels for {summary['proposed']} images of {project} from {summary['source']} in "
               f"{summary['seconds']:.1f} s: {classes or 'none'}; {summary['blind']} are blind checks")
    if summary["proposed"]:
        typer.echo(f"review them with 'defectlab proposals next {project}'")


@proposals_app.command("list")
def list_open(
    project: ProjectArgument,
    every: Annotated[bool, flag("--all", help="Reviewed proposals too, not only open ones.")] = False,
    as_json: Annotated[bool, flag("--json", help="Print one JSON object a line.")] = False,
) -> None:
    """List proposals, least confident first."""
    from defectlab.proposals import list_proposals

    for row in list_proposals(open_workspace(), project, status=None if every else "open"):
        if as_json:
            echo_json(row)
        else:
            typer.echo(_line(row))


@proposals_app.command("next")
def show_next(
    project: ProjectArgument,
    as_json: Annotated[bool, flag("--json", help="Print the proposal as JSON.")] = False,
) -> None:
    """Show the open proposal that most needs a look (the least confident)."""
    from defectlab.proposals import next_proposal

    row = next_proposal(open_workspace(), project)
    if as_json:
        echo_json(row)
    elif row is None:
        typer.echo(f"project {project!r} has no open proposal; make some with 'defectlab propose {project}'")
    else:
        typer.echo(f"{_line(row)}  ({row['remaining']} open)")


@proposals_app.command("accept")
def accept(project: ProjectArgument, proposal: ProposalArgument, reviewer: ReviewerOption = None) -> None:
    """Accept a proposal: its label becomes the image's label."""
    _review(project, proposal, reviewer, "accept", None)


@proposals_app.command("correct")
def correct(
    project: ProjectArgument,
    proposal: ProposalArgument,
    class_name: Annotated[str, typer.Option("--class", help="The right class, such as ok or scratch.")],
    reviewer: ReviewerOption = None,
) -> None:
    """Give the right class instead of the proposed one; a blind check is labeled this way too."""
    _review(project, proposal, reviewer, "correct", class_name)


@proposals_app.command("reject")
def reject(project: ProjectArgument, proposal: ProposalArgument, reviewer: ReviewerOption = None) -> None:
    """Reject a proposal: the image stays unlabeled."""
    _review(project, proposal, reviewer, "reject", None)


@proposals_app.command("report")
def report(
    project: ProjectArgument,
    as_json: Annotated[bool, flag("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Show how often proposals were right per class, blind-check agreement and reviewing pace."""
    from defectlab.proposals import proposal_report

    found = proposal_report(open_workspace(), project)
    if as_json:
        echo_json(found)
        return
    typer.echo(f"{found['reviewed']} reviewed, {found['open']} open; " +
               ", ".join(f"{status} {count}" for status, count in found["by_status"].items()))
    for name, entry in sorted(found["by_class"].items()):
        right = "-" if entry["right"] is None else f"{entry['right']:.0%}"
        typer.echo(f"  {name:<16} {entry['reviewed']:>5} reviewed, right {right}")
    blind = found["blind"]
    agree = "-" if blind["agree"] is None else f"{blind['agree']:.0%}"
    typer.echo(f"blind checks: {blind['checks']}, agreeing with the proposal {agree}")
    for name, pace in found["reviewers"].items():
        per_hour = "-" if pace["per_hour"] is None else f"{pace['per_hour']:.0f}"
        typer.echo(f"  {name}: {pace['reviews']} reviews, {per_hour} an hour")
    for warning in found["warnings"]:
        typer.echo(f"warning: {warning}")


def _review(project: str, proposal: int, reviewer: str | None, action: str, class_name: str | None) -> None:
    from defectlab.proposals import refresh_due, review_proposal

    workspace = open_workspace()
    row = review_proposal(workspace, project, proposal, reviewer=reviewer or login_name(), action=action,
                          class_name=class_name)
    check = ""
    if "agrees" in row:
        check = f"; blind check: the proposal was {row['label']}, {'agreeing' if row['agrees'] else 'not agreeing'}"
    typer.echo(f"proposal {row['id']} {row['status']}: image {row['image_id']} is "
               f"{'still unlabeled' if row['status'] == 'rejected' else row['answer']}{check}")
    due = refresh_due(workspace, project)
    if due is not None:
        typer.echo(f"{due['labeled_images']} images are labeled now, against {due['learned_from']} when the open "
                   f"proposals were made: run 'defectlab propose {project} --from features --blind-share "
                   f"{due['blind_share']}' to propose from them")


def _line(row: dict) -> str:
    if row["label"] is None and row["status"] == "open":
        shown = "blind check: label it yourself"
    else:
        shown = f"{row['label']} ({row['confidence']:.2f})"
    return f"{row['id']:>6}  image {row['image_id']:>6}  {row['status']:<9}  {shown:<30}  {row['path']}"
