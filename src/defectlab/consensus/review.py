"""Reviewing a labeling task: agreement between its labelers, and settling each image into the project's label.

A reviewer settles an image in one of two ways:

- **label**: picks the final class (or one labeler's regions); that becomes
  the image's label in the project. A class is added as the newest class
  annotation, so earlier ones stay on record. Regions replace the image's
  regions with the chosen labeler's.
- **ambiguous**: the people disagree for a reason the definition does not
  settle; the image becomes a borderline example of the class in the defect
  book with a note, and its label stays as it was.

Images all labelers agree on can be settled in one step (``settle_agreed``).
Every decision records who and when; the newest one per image counts.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from defectlab.book import add_example
from defectlab.consensus.tasks import describe_task, find_task
from defectlab.data.regions import png_to_mask
from defectlab.errors import InvalidInputError, NotFoundError
from defectlab.formats.records import OK_CLASS
from defectlab.quality.agreement import LabelTable, measure_agreement
from defectlab.quality.matching import Shape, image_region_agreement, measure_region_agreement
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, Decision, DefectClass, Image, LabelingTask, Project, TaskAnnotation

__all__ = ["review_task", "settle", "settle_agreed", "task_agreement"]

logger = logging.getLogger(__name__)


def task_agreement(workspace: Workspace, project_name: str, task_name: str) -> dict[str, Any]:
    """Return the task's progress, agreement on image classes and, where labelers drew regions, on regions.

    Raises:
        InvalidInputError: Fewer than two labelers have labeled anything yet;
            the message names who has not started.
    """
    with workspace.session() as session:
        task = find_task(workspace, session, project_name, task_name)
        progress = describe_task(session, task)
        given = _task_annotations(session, task)
        decided = _decided_classes(session, task)
        started = [name for name in task.labelers if progress["progress"][name]["done"]]
        if len(started) < 2:
            waiting = ", ".join(f"{name} ({progress['progress'][name]['done']} of {progress['images']} labeled)"
                                for name in task.labelers if name not in started)
            raise InvalidInputError(f"task {task.name!r}: agreement needs two labelers with labels, and "
                                    f"{len(started)} {'has' if len(started) == 1 else 'have'} started; "
                                    f"waiting for: {waiting}")
        images = [(entry.image_id, session.get(Image, entry.image_id).path) for entry in task.images]
        shapes = _shapes(workspace, given) if _has_regions(given) else None
        labelers = list(task.labelers)
        table = _label_table(labelers, images, given, decided)
    result = {"task": progress, "classes": measure_agreement(table)}
    if shapes is not None:
        result["regions"] = measure_region_agreement(
            [(image_id, path, {name: shapes.get((image_id, name)) if (image_id, name) in given else None
                               for name in labelers})
             for image_id, path in images])
    return result


def review_task(workspace: Workspace, project_name: str, task_name: str) -> list[dict[str, Any]]:
    """Return every image of the task with all labelers' annotations and the decision, if any.

    Unsettled images come first, least agreed first within them.
    """
    with workspace.session() as session:
        task = find_task(workspace, session, project_name, task_name)
        given = _task_annotations(session, task)
        decisions = _newest_decisions(session, task)
        rows = []
        for entry in task.images:
            image = session.get(Image, entry.image_id)
            classes = {name: _image_class(given[(image.id, name)]) for name in task.labelers
                       if (image.id, name) in given}
            regions = {name: sum(a.kind != "class" for a in given[(image.id, name)]) for name in classes}
            decision = decisions.get(image.id)
            rows.append({"image_id": image.id, "path": image.path, "labels": classes, "regions": regions,
                         "agreement": _share_agreeing(classes), "decision": _describe_decision(decision)})
    unlabeled = 2.0
    return sorted(rows, key=lambda row: (row["decision"] is not None,
                                         unlabeled if row["agreement"] is None else row["agreement"], row["image_id"]))


def settle(workspace: Workspace, project_name: str, task_name: str, image_id: int, *, reviewer: str,
           class_name: str | None = None, labeler: str | None = None, ambiguous: bool = False,
           note: str | None = None) -> dict[str, Any]:
    """Settle one image of the task and return the decision.

    Args:
        class_name: The final class; taken from ``labeler``'s annotation when None.
        labeler: Whose annotation (with its regions) becomes the label.
        ambiguous: Mark the image ambiguous instead: it becomes a borderline
            example of ``class_name`` (or of the one defect class the labelers
            named) in the defect book, with ``note``.

    Raises:
        InvalidInputError: Nothing to decide from, an unknown class, or a
            labeler who has not labeled the image.
        NotFoundError: The task or image is not found.
    """
    if not reviewer.strip():
        raise InvalidInputError("every decision records who made it; give the reviewer's name")
    with workspace.session() as session:
        task = find_task(workspace, session, project_name, task_name)
        if not any(entry.image_id == image_id for entry in task.images):
            raise NotFoundError(f"image {image_id} is not in labeling task {task.name!r}")
        given = _task_annotations(session, task)
        image = session.get(Image, image_id)
        if ambiguous:
            decision = _mark_ambiguous(workspace, session, task, image, given, reviewer, class_name, note)
        else:
            decision = _apply_label(session, task, image, given, reviewer, class_name, labeler, note)
        session.add(decision)
        image.version += 1
        session.flush()
        logger.info("task %s: %s settled image %d as %s %s", task.name, reviewer, image_id, decision.outcome,
                    decision.class_name)
        return _describe_decision(decision)


def settle_agreed(workspace: Workspace, project_name: str, task_name: str, *, reviewer: str) -> dict[str, int]:
    """Settle every unsettled image that all the task's labelers labeled alike; return how many were and were not."""
    with workspace.session() as session:
        task = find_task(workspace, session, project_name, task_name)
        given = _task_annotations(session, task)
        decided = set(_newest_decisions(session, task))
        open_ids = [entry.image_id for entry in task.images if entry.image_id not in decided]
        shapes = _shapes(workspace, given) if _has_regions(given) else {}
        agreed = [image_id for image_id in open_ids if _all_agree(task, image_id, given, shapes)]
    for image_id in agreed:
        settle(workspace, project_name, task_name, image_id, reviewer=reviewer, labeler=task.labelers[0],
               note="all labelers agreed")
    return {"settled": len(agreed), "left": len(open_ids) - len(agreed)}


def _all_agree(task: LabelingTask, image_id: int, given: dict, shapes: dict) -> bool:
    if not all((image_id, name) in given for name in task.labelers):
        return False
    if len({_image_class(given[(image_id, name)]) for name in task.labelers}) != 1:
        return False
    if not shapes:
        return True
    return image_region_agreement({name: shapes.get((image_id, name), []) for name in task.labelers}) == 1.0


def _apply_label(session: Session, task: LabelingTask, image: Image, given: dict, reviewer: str,
                 class_name: str | None, labeler: str | None, note: str | None) -> Decision:
    source = []
    if labeler is not None:
        if (image.id, labeler) not in given:
            raise InvalidInputError(f"{labeler!r} has not labeled image {image.id} in task {task.name!r}; "
                                    f"pick one of: {', '.join(n for n in task.labelers if (image.id, n) in given)}")
        source = given[(image.id, labeler)]
        class_name = class_name or _image_class(source)
    if class_name is None:
        raise InvalidInputError("say what the image is: give the final class, or the labeler whose labels to keep")
    defect_class = _project_class(session, task, class_name)
    regions = [a for a in source if a.kind != "class"]
    if regions and defect_class.name != OK_CLASS:
        image.annotations = []
        for region in regions:
            image.annotations.append(Annotation(defect_class=region.defect_class, labeler=region.labeler,
                                                kind=region.kind, geometry=region.geometry,
                                                mask_sha256=region.mask_sha256))
    else:
        if _has_regions(given):
            image.annotations = [a for a in image.annotations if a.kind == "class"]
        image.annotations.append(Annotation(defect_class=defect_class, labeler=reviewer, kind="class"))
    return Decision(task_id=task.id, image_id=image.id, reviewer=reviewer, outcome="label",
                    class_name=defect_class.name, source_labeler=labeler, note=note)


def _mark_ambiguous(workspace: Workspace, session: Session, task: LabelingTask, image: Image, given: dict,
                    reviewer: str, class_name: str | None, note: str | None) -> Decision:
    labels = {name: _image_class(given[(image.id, name)]) for name in task.labelers if (image.id, name) in given}
    if class_name is None:
        named = sorted({label for label in labels.values() if label != OK_CLASS})
        if len(named) != 1:
            raise InvalidInputError(f"say which class image {image.id} is borderline for; the labelers named "
                                    f"{', '.join(named) or 'no defect class'}")
        class_name = named[0]
    defect_class = _project_class(session, task, class_name)
    given_labels = ", ".join(f"{name} {label}" for name, label in labels.items()) or "no labels yet"
    book_note = f"{note.strip()} " if note and note.strip() else ""
    book_note += f"(labelers disagreed in task {task.name}: {given_labels})"
    project_name = session.get(Project, task.project_id).name
    add_example(workspace, project_name, defect_class.name, image.id, role="borderline", author=reviewer,
                note=book_note, session=session)
    return Decision(task_id=task.id, image_id=image.id, reviewer=reviewer, outcome="ambiguous",
                    class_name=defect_class.name, note=note)


def _has_regions(given: dict[tuple[int, str], list[TaskAnnotation]]) -> bool:
    return any(a.kind != "class" for rows in given.values() for a in rows)


def _project_class(session: Session, task: LabelingTask, name: str) -> DefectClass:
    from defectlab.formats._layout import is_ok_folder

    name = OK_CLASS if is_ok_folder(name) else name
    classes = session.scalars(select(DefectClass).where(DefectClass.project_id == task.project_id)).all()
    for defect_class in classes:
        if defect_class.name == name:
            return defect_class
    raise InvalidInputError(f"class {name!r} is not in the project; use one of: "
                            f"{', '.join(sorted(c.name for c in classes))}")


def _task_annotations(session: Session, task: LabelingTask) -> dict[tuple[int, str], list[TaskAnnotation]]:
    """Return the task's annotations by (image id, labeler), in the order they were made."""
    rows = session.scalars(select(TaskAnnotation).where(TaskAnnotation.task_id == task.id)
                           .order_by(TaskAnnotation.id)).all()
    given: dict[tuple[int, str], list[TaskAnnotation]] = defaultdict(list)
    for row in rows:
        given[(row.image_id, row.labeler)].append(row)
    return dict(given)


def _image_class(rows: list[TaskAnnotation]) -> str:
    """Return the class a labeler gave the whole image: their class annotation, else their most drawn region class."""
    for row in rows:
        if row.kind == "class":
            return row.defect_class.name
    return Counter(row.defect_class.name for row in rows).most_common(1)[0][0]


def _shapes(workspace: Workspace,
            given: dict[tuple[int, str], list[TaskAnnotation]]) -> dict[tuple[int, str], list[Shape]]:
    shapes = {}
    for key, rows in given.items():
        shapes[key] = [Shape(row.defect_class.name, row.kind, row.geometry,
                             png_to_mask(workspace.blobs.get(row.mask_sha256)) if row.mask_sha256 else None)
                       for row in rows if row.kind != "class"]
    return shapes


def _label_table(labelers: list[str], images: list[tuple[int, str]], given: dict,
                 decided: dict[int, str]) -> LabelTable:
    labels = {name: [_image_class(given[(image_id, name)]) if (image_id, name) in given else None
                     for image_id, _ in images] for name in labelers}
    return LabelTable(list(labelers), images, labels, [decided.get(image_id) for image_id, _ in images])


def _newest_decisions(session: Session, task: LabelingTask) -> dict[int, Decision]:
    rows = session.scalars(select(Decision).where(Decision.task_id == task.id).order_by(Decision.id)).all()
    return {row.image_id: row for row in rows}


def _decided_classes(session: Session, task: LabelingTask) -> dict[int, str]:
    return {image_id: row.class_name for image_id, row in _newest_decisions(session, task).items()
            if row.outcome == "label"}


def _share_agreeing(classes: dict[str, str]) -> float | None:
    if not classes:
        return None
    return round(Counter(classes.values()).most_common(1)[0][1] / len(classes), 6)


def _describe_decision(decision: Decision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {"image_id": decision.image_id, "outcome": decision.outcome, "class": decision.class_name,
            "labeler": decision.source_labeler, "reviewer": decision.reviewer, "note": decision.note,
            "created_at": decision.created_at.isoformat() if decision.created_at else None}
