"""CLI commands for training, evaluation and prediction."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from defectlab.cli import app, echo_json, flag, open_workspace
from defectlab.commands.progress import ProgressBar
from defectlab.errors import DefectlabError, InvalidInputError


@app.command("train")
def train(
    project: Annotated[str, typer.Argument(help="Name of the project to train.")],
    setting: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Override one setting as NAME=VALUE, such as epochs=20; repeatable.")] = None,
    as_json: Annotated[bool, flag("--json", help="Print the result as JSON, including the model id.")] = False,
) -> None:
    """Train a model on the project's labeled images with settings chosen from the data."""
    from defectlab.training.run import train_project

    bar = ProgressBar()
    result = train_project(open_workspace(), project, overrides=parse_settings(setting or []), progress=bar,
                           on_plan=None if as_json else _show_plan)
    bar.close()
    if as_json:
        echo_json(result.to_dict())
        return
    if result.later_reasons:
        typer.echo("Chosen while training:")
        for reason in result.later_reasons:
            typer.echo(f"  - {reason}")
    height, width = result.plan.input_size
    typer.echo(f"model {result.model_id} trained in {result.seconds:.0f} s (input {height} x {width} px, "
               f"threshold {result.threshold:.3f}); evaluate it with 'defectlab evaluate {result.model_id}'")


def _show_plan(plan) -> None:  # noqa: ANN001 - a TrainingPlan
    """Print the plan's reasons and warnings."""
    typer.echo("Settings chosen from the data:")
    for reason in plan.reasons:
        typer.echo(f"  - {reason}")
    for warning in plan.warnings:
        typer.echo(f"warning: {warning}", err=True)


def parse_settings(items: list[str]) -> dict[str, Any]:
    """Parse ``NAME=VALUE`` pairs; numbers and true/false become numbers and booleans."""
    settings: dict[str, Any] = {}
    for item in items:
        name, separator, text = item.partition("=")
        if not separator or not name.strip():
            raise InvalidInputError(f"setting {item!r} is not NAME=VALUE; write it as --set epochs=20")
        settings[name.strip()] = _parse_value(text.strip())
    return settings


def _parse_value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@app.command("evaluate")
def evaluate(
    model: Annotated[str, typer.Argument(help="Model id, as printed by 'train' and 'models'.")],
    split: Annotated[str, typer.Option(help="Split to evaluate on: train, dev or test.")] = "test",
    report: Annotated[Optional[Path], typer.Option(help="Folder for report.html (default: in the workspace).")] = None,
    as_json: Annotated[bool, flag("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Measure a model on one split and write an HTML report."""
    from defectlab.evaluation.regions import region_lines
    from defectlab.evaluation.runner import evaluate_model

    run = evaluate_model(open_workspace(), model_id(model), split=split, report_dir=report)
    if as_json:
        echo_json(run.to_dict())
        return
    for line in describe_evaluation(run.evaluation):
        typer.echo(line)
    for line in region_lines(run.regions):
        typer.echo(line)
    typer.echo(f"report: {run.report_path}")


def describe_evaluation(evaluation) -> list[str]:  # noqa: ANN001 - an Evaluation
    """Return the headline figures of an evaluation as plain lines."""
    lines = [f"{evaluation.images} images ({evaluation.defective} defective, {evaluation.good} good), "
             f"threshold {evaluation.threshold:.3f}"]
    if evaluation.escape_rate is not None:
        lines.append(f"escape rate   {evaluation.escape_rate:6.1%}  ({evaluation.escapes} of {evaluation.defective} "
                     "defective images called OK)")
    if evaluation.overkill_rate is not None:
        lines.append(f"overkill rate {evaluation.overkill_rate:6.1%}  ({evaluation.overkills} of {evaluation.good} "
                     "good images called defective)")
    lines.append(f"accuracy      {evaluation.accuracy:6.1%}")
    if evaluation.auroc is not None:
        lines.append(f"AUROC         {evaluation.auroc:.4f}  (defect vs OK)")
    for metrics in evaluation.per_class:
        recall = "-" if metrics.recall is None else f"{metrics.recall:.1%}"
        precision = "-" if metrics.precision is None else f"{metrics.precision:.1%}"
        lines.append(f"  {metrics.name:<16} recall {recall:>7}  precision {precision:>7}  ({metrics.support} images)")
    return lines


@app.command("predict")
def predict(
    model: Annotated[str, typer.Argument(help="Model id in the workspace, or a model file or bundle folder from 'export-model'.")],
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders (searched recursively).")],
    as_json: Annotated[bool, flag("--json", help="Print one JSON object a line.")] = False,
    heatmaps: Annotated[Optional[Path], typer.Option(help="Folder for heatmap PNGs (anomaly and segmentation models).")] = None,
    masks: Annotated[Optional[Path], typer.Option(help=(
        "Folder for mask PNGs of the image's size, each pixel the index of its class in the model's classes "
        "(0 for no defect; segmentation models)."))] = None,
) -> None:
    """Predict image files or folders with a model id or a model file."""
    from defectlab.prediction.outputs import save_heatmap, save_mask

    predictor = load_predictor(model)
    failures = 0
    written = {"heatmaps": 0, "masks": 0}
    predicted = 0
    for result in predictor.predict_files(paths, heatmaps=heatmaps is not None):
        if isinstance(result, DefectlabError):
            failures += 1
            typer.echo(f"error: {result}", err=True)
            continue
        predicted += 1
        row = result.to_dict()
        if heatmaps is not None and result.heatmap is not None:
            row["heatmap"] = str(save_heatmap(result.heatmap, heatmaps, result.path))
            written["heatmaps"] += 1
        if masks is not None and result.mask is not None:
            row["mask"] = str(save_mask(result.mask, masks, result.path))
            written["masks"] += 1
        if as_json:
            echo_json(row)
        else:
            verdict = "DEFECT" if result.is_defect else "ok"
            found = result.regions if result.regions is not None else result.boxes
            counted = f"  ({sum(r['counts'] for r in found)} regions)" if found else ""
            typer.echo(f"{verdict:<6} {result.label:<16} score {result.score:.3f}  {result.path}{counted}")
    _warn_unwritten(predicted, written, heatmaps=heatmaps, masks=masks)
    if failures:
        raise typer.Exit(code=2)


def _warn_unwritten(predicted: int, written: dict[str, int], *, heatmaps: Path | None, masks: Path | None) -> None:
    """Warn when --heatmaps or --masks was given but the model gave none to write."""
    if predicted and heatmaps is not None and not written["heatmaps"]:
        typer.echo("warning: no heatmaps were written because this model gives none; --heatmaps applies to "
                   "anomaly and segmentation models", err=True)
    if predicted and masks is not None and not written["masks"]:
        typer.echo("warning: no masks were written because this model gives none; --masks applies to "
                   "segmentation models", err=True)


def model_id(text: str) -> int:
    """Return the model id that ``text`` spells.

    Raises:
        InvalidInputError: ``text`` is not a whole number, such as a project name given by mistake.
    """
    if text.strip().isdigit():
        return int(text)
    raise InvalidInputError(
        f"{text!r} is not a model id; give the number that 'train' printed, or list a project's models "
        f"with 'defectlab models {text}'"
    )


def load_predictor(model: str):  # noqa: ANN201 - a Predictor, imported lazily
    """Load a predictor from a model id in the workspace or a model file."""
    from defectlab.evaluation.runner import load_stored_model
    from defectlab.prediction.predictor import Predictor

    if model.isdigit():
        artifact, _ = load_stored_model(open_workspace(), int(model))
        predictor = Predictor.from_artifact(artifact)
        predictor.description["model_id"] = int(model)
        return predictor
    return Predictor.load(Path(model))


@app.command("models")
def list_models(project: Annotated[str, typer.Argument(help="Name of the project.")], as_json: Annotated[bool, flag("--json", help="Print JSON.")] = False) -> None:
    """List a project's models with their evaluations."""
    from defectlab.data.summary import summarize_models

    rows = summarize_models(open_workspace(), project)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        typer.echo(f"project {project!r} has no models yet; train one with 'defectlab train {project}'")
    for row in rows:
        test = row["evaluations"].get("test")
        figures = "" if test is None else (f", test escape rate {_percent(test['escape_rate'])}, "
                                           f"overkill rate {_percent(test['overkill_rate'])}")
        typer.echo(f"model {row['id']}  {row['task']}  {row['created_at']}  threshold {row['threshold']:.3f}{figures}")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


@app.command("export-model")
def export_model(
    model: Annotated[str, typer.Argument(help="Model id, as printed by 'train' and 'models'.")],
    out: Annotated[Path, typer.Argument(help="File to write (model.pt), or a new folder for an ONNX bundle.")],
    kind: Annotated[str, typer.Option(
        "--format", help="'torch': one file for 'defectlab predict'; 'onnx': a bundle that runs with ONNX Runtime alone.")] = "torch",
) -> None:
    """Write a stored model to a file or an ONNX bundle that 'defectlab predict' and 'serve' can use anywhere."""
    number = model_id(model)
    if kind == "torch":
        from defectlab.prediction.outputs import write_model_file

        write_model_file(open_workspace(), number, out)
        typer.echo(f"wrote model {number} to {out}")
        return
    if kind != "onnx":
        raise InvalidInputError(f"--format {kind!r} is not known; use 'torch' or 'onnx'")
    from defectlab.deployment.bundle import SCORE_TOLERANCE, export_bundle
    from defectlab.evaluation.runner import load_stored_model

    artifact, _ = load_stored_model(open_workspace(), number)
    export_bundle(artifact, out, source={"model_id": number})
    typer.echo(f"wrote model {number} as an ONNX bundle to {out} (checked: scores within {SCORE_TOLERANCE} of PyTorch)")


@app.command("demo")
def demo(
    data: Annotated[Optional[Path], typer.Option(
        help="Folder of images to use (default: the magnetic-tile dataset when found, else generated images).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the demo workspace and reports.")] = Path("runs/demo-workspace"),
) -> None:
    """Run the whole loop once: import, train a classifier and an anomaly model, evaluate, predict."""
    from defectlab.demo import run_demo

    run_demo(data=data, out=out, echo=typer.echo)
