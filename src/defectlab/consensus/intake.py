"""Bringing one labeler's work on a labeling task in from a dataset written by another labeling tool.

Any format ``defectlab import`` reads is accepted. Each image of the dataset
is matched to a task image by its relative path, else by its content (the
SHA-256 of the file's bytes equals the stored original's). Images that match
no task image, and images the dataset leaves unlabeled, are reported and
skipped; everything else is stored in one transaction, replacing that
labeler's earlier annotations of the same images.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defectlab.consensus.tasks import check_labeler, find_task, replace_annotations
from defectlab.data.regions import fit_region, mask_to_png
from defectlab.errors import InvalidInputError
from defectlab.formats import read_dataset
from defectlab.formats.records import OK_CLASS, ImportedImage, Problem
from defectlab.workspace import Workspace
from defectlab.workspace.schema import DefectClass, Image, Project, TaskAnnotation

__all__ = ["IntakeReport", "import_labeler_work"]

logger = logging.getLogger(__name__)


@dataclass
class IntakeReport:
    """How many task images got the labeler's annotations, and every problem met."""

    task: str
    labeler: str
    labeled: int = 0
    regions: int = 0
    problems: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "labeler": self.labeler, "labeled": self.labeled, "regions": self.regions,
                "problems": [str(problem) for problem in self.problems]}


def import_labeler_work(workspace: Workspace, project_name: str, task_name: str, labeler: str, path: Path, *,
                        format: str | None = None) -> IntakeReport:
    """Store the labels found under ``path`` as ``labeler``'s annotations of the task's images.

    Raises:
        InvalidInputError: The dataset names a class the project does not
            have (nothing is stored), or no image matched the task.
        NotFoundError: The task, the labeler or ``path`` is not found.
    """
    batch = read_dataset(path, format)
    report = IntakeReport(task_name, labeler, problems=list(batch.problems))
    with workspace.session() as session:
        task = find_task(workspace, session, project_name, task_name)
        check_labeler(task, labeler)
        classes = {c.name: c for c in session.get(Project, task.project_id).classes}
        _check_classes(batch.images, classes, project_name)
        task_images = [session.get(Image, entry.image_id) for entry in task.images]
        by_path = {image.path: image for image in task_images}
        by_content = {image.sha256: image for image in task_images}
        for item in batch.images:
            image = by_path.get(item.path) or by_content.get(_file_digest(item.source))
            if image is None:
                report.problems.append(Problem(item.path, f"not an image of task {task_name!r}; skipped"))
            elif not item.labeled and item.label is None and not item.regions:
                report.problems.append(Problem(item.path, "has no label in this dataset; skipped", "warning"))
            else:
                rows = _rows(workspace, item, image, classes, report)
                if rows:
                    replace_annotations(session, task.id, image.id, labeler, rows)
                    report.labeled += 1
                    report.regions += sum(row.kind != "class" for row in rows)
        if report.labeled == 0:
            raise InvalidInputError(f"no image under {path} matched an image of task {task_name!r} by path or "
                                    "content; check that the dataset holds the task's images")
    logger.info("task %s: imported %d images labeled by %s from %s", task_name, report.labeled, labeler, path)
    return report


def _check_classes(items: list[ImportedImage], classes: dict[str, DefectClass], project_name: str) -> None:
    named = {item.label for item in items if item.label is not None}
    named |= {region.class_name for item in items for region in item.regions}
    unknown = sorted(named - set(classes) - {OK_CLASS})
    if unknown:
        raise InvalidInputError(f"the dataset names class {unknown[0]!r}, which project {project_name!r} does not "
                                f"have; add it with 'defectlab project add-class {project_name} {unknown[0]}'")


def _file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _rows(workspace: Workspace, item: ImportedImage, image: Image, classes: dict[str, DefectClass],
          report: IntakeReport) -> list[TaskAnnotation]:
    rows = []
    for region in item.regions:
        fitted, problems = fit_region(region, width=image.width, height=image.height, path=item.path)
        report.problems.extend(problems)
        if fitted is None:
            continue
        row = TaskAnnotation(defect_class=classes[fitted.class_name], kind=fitted.kind)
        if fitted.kind == "mask":
            row.mask_sha256 = workspace.blobs.put(mask_to_png(fitted.mask))
        else:
            row.geometry = [float(v) for v in (fitted.box if fitted.kind == "box" else fitted.polygon)]
        rows.append(row)
    if item.regions and not rows:
        report.problems.append(Problem(item.path, "none of its regions could be kept; skipped"))
    elif not rows:
        rows.append(TaskAnnotation(defect_class=classes[item.label or OK_CLASS], kind="class"))
    return rows

