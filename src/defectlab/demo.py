"""The main job: run the whole inspection loop once and print a short summary.

It uses the magnetic-tile images when they are found (``--data``, else
``../shared/datasets/magnetic-tile`` beside the repository), and a small set
of generated images otherwise.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from defectlab.data.importer import import_path
from defectlab.evaluation.runner import evaluate_model, load_stored_model
from defectlab.prediction.predictor import Predictor
from defectlab.samples import write_class_folders
from defectlab.training.run import train_project
from defectlab.workspace import Workspace

__all__ = ["find_demo_data", "run_demo"]

logger = logging.getLogger(__name__)

_MARKER = ".defectlab-demo"
_PREDICTED = 5


def find_demo_data() -> Path | None:
    """Return the magnetic-tile folder beside the repository or the working folder, if present."""
    repository = Path(__file__).resolve().parents[2]
    for base in (Path.cwd(), repository):
        candidate = base.parent / "shared" / "datasets" / "magnetic-tile"
        if candidate.is_dir():
            return candidate
    return None


def run_demo(*, data: Path | None, out: Path, echo: Callable[[str], None]) -> list[dict]:
    """Import, train, evaluate and predict for a classification and an anomaly project.

    ``out`` is emptied first when an earlier demo made it; any other existing
    folder is left alone and used as it is.
    """
    source = data or find_demo_data()
    if source is None:
        source = write_class_folders(out.parent / "demo-images")
        count = sum(1 for path in source.rglob("*.png") if not path.stem.endswith("_mask"))
        echo(f"no dataset found; generated {count} images with defect masks in {source}")
    _reset(out)
    workspace = Workspace.open(out)
    echo(f"workspace: {out}\nimages: {source}")

    rows = [_run_task(workspace, source, task, echo) for task in ("classification", "anomaly")]
    echo("\nSummary (test split, images not used in training)")
    for row in rows:
        echo(f"  {row['task']:<15} escape rate {_percent(row['escape_rate'])}, overkill rate "
             f"{_percent(row['overkill_rate'])}, accuracy {_percent(row['accuracy'])}, "
             f"AUROC {_number(row['auroc'])}, trained in {row['seconds']:.0f} s")
        echo(f"  {'':<15} report: {row['report']}")
    return rows


def _reset(out: Path) -> None:
    if (out / _MARKER).exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).write_text("made by 'defectlab demo'; the next demo run deletes this folder\n")


def _run_task(workspace: Workspace, source: Path, task: str, echo: Callable[[str], None]) -> dict:
    name = f"{source.name}-{task}"
    echo(f"\n== {task}: project {name!r}")
    workspace.create_project(name, task)
    report = import_path(workspace, name, source)
    echo(f"imported {report.added} images (detected format: {report.format}): "
         + ", ".join(f"{label} {count}" for label, count in sorted(report.per_class.items())))
    if report.problems:
        errors = sum(1 for problem in report.problems if problem.severity == "error")
        echo(f"import found {errors} errors and {len(report.problems) - errors} warnings; the first: "
             f"{report.problems[0]} (all are listed by 'defectlab import PROJECT PATH')")

    result = train_project(workspace, name, on_plan=lambda plan: _show_plan(plan, echo))
    for reason in result.later_reasons:
        echo(f"  - chosen while training: {reason}")
    height, width = result.plan.input_size
    echo(f"trained model {result.model_id} in {result.seconds:.0f} s at an input of {height} x {width} px")
    run = evaluate_model(workspace, result.model_id, split="test")
    _predict_held_back(workspace, result.model_id, source, echo)
    figures = run.evaluation
    return {"task": task, "model_id": result.model_id, "seconds": result.seconds, "report": run.report_path,
            "escape_rate": figures.escape_rate, "overkill_rate": figures.overkill_rate,
            "accuracy": figures.accuracy, "auroc": figures.auroc}


def _show_plan(plan, echo: Callable[[str], None]) -> None:  # noqa: ANN001 - a TrainingPlan
    """Print the plan's reasons and warnings."""
    for reason in plan.reasons:
        echo(f"  - {reason}")
    for warning in plan.warnings:
        echo(f"  warning: {warning}")


def _predict_held_back(workspace: Workspace, model_id: int, source: Path, echo: Callable[[str], None]) -> None:
    artifact, images = load_stored_model(workspace, model_id)
    held_back = [image for image in images if image.split == "test"]
    picked = held_back[:: max(1, len(held_back) // _PREDICTED)][:_PREDICTED]
    predictor = Predictor.from_artifact(artifact)
    echo("predictions on held-back files:")
    for result in predictor.predict_files([source / image.path for image in picked]):
        if isinstance(result, Exception):
            echo(f"  error: {result}")
            continue
        truth = next(image.label for image in picked if str(source / image.path) == result.path)
        echo(f"  {result.label:<10} score {result.score:.3f} (labeled {truth})  {Path(result.path).name}")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
