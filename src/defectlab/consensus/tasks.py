"""Labeling tasks: the same images handed to 2 to 5 named labelers, who label them blind.

Each labeler's annotations in a task are stored apart from the project's
labels (table ``task_annotations``) and from each other: a labeler gets only
their own work back until review (``defectlab.consensus.review``). Labelers get
the task's images in one shared, shuffled order.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from defectlab.data.regions import fit_region
from defectlab.errors import ConflictError, InvalidInputError, NotFoundError
from defectlab.formats.records import OK_CLASS, Region
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Decision, DefectClass, Image, LabelingTask, Project, TaskAnnotation, TaskImage

__all__ = ["MAX_LABELERS", "annotate", "check_labeler", "create_task", "describe_task", "find_task", "labeler_view",
           "list_tasks", "next_image", "replace_annotations"]

logger = logging.getLogger(__name__)

MIN_LABELERS = 2
MAX_LABELERS = 5
_RESERVED_NAMES = ("import",)


def create_task(workspace: Workspace, project_name: str, name: str, labelers: list[str], *, created_by: str,
                image_ids: list[int] | None = None, unlabeled: bool = False, count: int | None = None,
                seed: int = 0) -> dict[str, Any]:
    """Create a labeling task on some of the project's images and return its description.

    Args:
        image_ids: The images to label; all the project's images when None.
        unlabeled: Only images without a label (when ``image_ids`` is None).
        count: Take this many of them, drawn at random with ``seed``.

    Raises:
        InvalidInputError: Fewer than 2 or more than 5 labelers, a reserved or
            repeated name, an image not in the project, or no image to label.
        ConflictError: The project has a task of that name already.
    """
    names = _checked_labelers(labelers)
    if not name.strip():
        raise InvalidInputError("a labeling task needs a name, such as 'scratch-review-june'")
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        if session.scalar(select(LabelingTask).where(LabelingTask.project_id == project.id,
                                                     LabelingTask.name == name.strip())) is not None:
            raise ConflictError(f"project {project_name!r} has a labeling task {name.strip()!r} already; "
                                "choose another name")
        chosen = _choose_images(session, project, image_ids, unlabeled=unlabeled, count=count, seed=seed)
        order = np.random.default_rng(seed).permutation(len(chosen))
        task = LabelingTask(project_id=project.id, name=name.strip(), labelers=names, created_by=created_by)
        task.images = [TaskImage(image_id=chosen[i], position=p) for p, i in enumerate(order)]
        session.add(task)
        session.flush()
        logger.info("created labeling task %s of %s: %d images for %s", task.name, project_name, len(chosen),
                    ", ".join(names))
        return describe_task(session, task)


def list_tasks(workspace: Workspace, project_name: str) -> list[dict[str, Any]]:
    """Return every labeling task of the project with each labeler's progress, oldest first."""
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        tasks = session.scalars(select(LabelingTask).where(LabelingTask.project_id == project.id)
                                .order_by(LabelingTask.id)).all()
        return [describe_task(session, task) for task in tasks]


def find_task(workspace: Workspace, session: Session, project_name: str, task_name: str) -> LabelingTask:
    """Return the named task of the project.

    Raises:
        NotFoundError: The project or the task does not exist.
    """
    project = workspace.get_project(session, project_name)
    task = session.scalar(select(LabelingTask).where(LabelingTask.project_id == project.id,
                                                     LabelingTask.name == task_name))
    if task is None:
        names = session.scalars(select(LabelingTask.name).where(LabelingTask.project_id == project.id)).all()
        known = ", ".join(names) or "none yet"
        raise NotFoundError(f"project {project_name!r} has no labeling task {task_name!r}; its tasks: {known}")
    return task


def describe_task(session: Session, task: LabelingTask) -> dict[str, Any]:
    """Return a task's name, labelers, image count, progress per labeler and how many images are settled."""
    done = labeled_by(session, task)
    settled = set(session.scalars(select(Decision.image_id).where(Decision.task_id == task.id)))
    total = len(task.images)
    return {"name": task.name, "labelers": list(task.labelers), "images": total, "created_by": task.created_by,
            "created_at": task.created_at.isoformat(),
            "progress": {name: {"done": len(done[name]), "left": total - len(done[name])} for name in task.labelers},
            "settled": len(settled)}


def labeled_by(session: Session, task: LabelingTask) -> dict[str, set[int]]:
    """Return, per labeler of the task, the ids of the images they have labeled."""
    rows = session.execute(select(TaskAnnotation.labeler, TaskAnnotation.image_id)
                           .where(TaskAnnotation.task_id == task.id)).all()
    done: dict[str, set[int]] = defaultdict(set)
    for labeler, image_id in rows:
        done[labeler].add(image_id)
    return done


def next_image(workspace: Workspace, project_name: str, task_name: str, labeler: str) -> dict[str, Any] | None:
    """Return the labeler's next image of the task (id, path, position, how many are left), or None when done.

    Nothing about other labelers' work or the image's current label is
    returned: the task is blind.
    """
    with workspace.session() as session:
        task = find_task(workspace, session, project_name, task_name)
        check_labeler(task, labeler)
        done = labeled_by(session, task)[labeler]
        left = [entry for entry in task.images if entry.image_id not in done]
        if not left:
            return None
        image = session.get(Image, left[0].image_id)
        return {"image_id": image.id, "path": image.path, "width": image.width, "height": image.height,
                "position": left[0].position + 1, "images": len(task.images), "left": len(left)}


def labeler_view(workspace: Workspace, project_name: str, task_name: str, image_id: int,
                 labeler: str) -> list[dict[str, Any]]:
    """Return the labeler's own annotations of one task image, and no one else's."""
    with workspace.session() as session:
        task = find_task(workspace, session, project_name, task_name)
        check_labeler(task, labeler)
        _task_image(session, task, image_id)
        rows = session.scalars(select(TaskAnnotation).where(
            TaskAnnotation.task_id == task.id, TaskAnnotation.image_id == image_id,
            TaskAnnotation.labeler == labeler).order_by(TaskAnnotation.id)).all()
        return [describe_annotation(row) for row in rows]


def describe_annotation(row: TaskAnnotation) -> dict[str, Any]:
    shape = {"box": "box", "polygon": "polygon"}.get(row.kind)
    described = {"kind": row.kind, "class": row.defect_class.name}
    if shape is not None:
        described[shape] = row.geometry
    if row.mask_sha256 is not None:
        described["mask_sha256"] = row.mask_sha256
    return described


def annotate(workspace: Workspace, project_name: str, task_name: str, image_id: int, labeler: str, *,
             class_name: str | None = None, regions: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Store one labeler's annotation of one task image, replacing what they gave it before.

    Give either an image-level ``class_name`` (``ok`` for an image with no
    defect) or ``regions``: dicts with ``class`` and a ``box``
    ``[x_min, y_min, x_max, y_max]`` or a flat ``polygon`` ``[x1, y1, ...]``
    in displayed pixels.

    Raises:
        InvalidInputError: Neither or both given, an unknown class, or a region
            that is not valid (the message names it by its position).
        NotFoundError: The task, labeler or image is not found.
    """
    if (class_name is None) == (not regions):
        raise InvalidInputError("give either one class for the whole image (ok when it has no defect) or "
                                "one or more regions, not both and not neither")
    with workspace.session() as session:
        task = find_task(workspace, session, project_name, task_name)
        check_labeler(task, labeler)
        image = _task_image(session, task, image_id)
        classes = {c.name: c for c in session.get(Project, task.project_id).classes}
        rows = ([TaskAnnotation(defect_class=_class(classes, class_name), kind="class")] if class_name is not None
                else [_region_row(classes, image, index, region) for index, region in enumerate(regions)])
        replace_annotations(session, task.id, image_id, labeler, rows)
        session.flush()
        logger.info("task %s: %s labeled image %d (%d annotations)", task.name, labeler, image_id, len(rows))
        return [describe_annotation(row) for row in rows]


def replace_annotations(session: Session, task_id: int, image_id: int, labeler: str,
                        rows: list[TaskAnnotation]) -> None:
    """Put ``rows`` in place of the labeler's earlier annotations of one task image."""
    old = session.scalars(select(TaskAnnotation).where(
        TaskAnnotation.task_id == task_id, TaskAnnotation.image_id == image_id, TaskAnnotation.labeler == labeler))
    for row in old:
        session.delete(row)
    for row in rows:
        row.task_id, row.image_id, row.labeler = task_id, image_id, labeler
        session.add(row)


def _checked_labelers(labelers: list[str]) -> list[str]:
    names = [name.strip() for name in labelers]
    if any(not name for name in names):
        raise InvalidInputError("a labeler name is empty; give each labeler's name")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidInputError(f"labeler {repeated[0]!r} is named more than once; name each labeler once")
    if not MIN_LABELERS <= len(names) <= MAX_LABELERS:
        raise InvalidInputError(f"a labeling task needs {MIN_LABELERS} to {MAX_LABELERS} labelers; "
                                f"{len(names)} given")
    reserved = [name for name in names if name.lower() in _RESERVED_NAMES]
    if reserved:
        raise InvalidInputError(f"{reserved[0]!r} names the labels that came with an import; choose another name")
    return names


def _choose_images(session: Session, project: Project, image_ids: list[int] | None, *, unlabeled: bool,
                   count: int | None, seed: int) -> list[int]:
    from defectlab.data.snapshot import image_label

    stored = session.scalars(select(Image).where(Image.project_id == project.id).order_by(Image.id)).all()
    if image_ids is not None:
        known = {image.id for image in stored}
        missing = [i for i in image_ids if i not in known]
        if missing:
            raise InvalidInputError(f"image {missing[0]} is not in project {project.name!r}; list them with "
                                    f"'defectlab images {project.name}'")
        chosen = list(dict.fromkeys(image_ids))
    else:
        chosen = [image.id for image in stored if not unlabeled or image_label(image.annotations) is None]
    if count is not None:
        if count < 1:
            raise InvalidInputError(f"count must be 1 or more, not {count}")
        picked = np.random.default_rng(seed).choice(len(chosen), size=min(count, len(chosen)), replace=False)
        chosen = sorted(chosen[i] for i in picked)
    if not chosen:
        which = "unlabeled images" if unlabeled else "images"
        raise InvalidInputError(f"project {project.name!r} has no {which} to put in a labeling task; import some first")
    return chosen


def check_labeler(task: LabelingTask, labeler: str) -> None:
    """Raise NotFoundError unless ``labeler`` is one of the task's labelers."""
    if labeler not in task.labelers:
        raise NotFoundError(f"{labeler!r} is not a labeler of task {task.name!r}; its labelers: "
                            f"{', '.join(task.labelers)}")


def _task_image(session: Session, task: LabelingTask, image_id: int) -> Image:
    if not any(entry.image_id == image_id for entry in task.images):
        raise NotFoundError(f"image {image_id} is not in labeling task {task.name!r}")
    return session.get(Image, image_id)


def _class(classes: dict[str, DefectClass], name: str) -> DefectClass:
    from defectlab.formats._layout import is_ok_folder

    if is_ok_folder(name):
        name = OK_CLASS
    if name not in classes:
        raise InvalidInputError(f"class {name!r} is not in the project; use one of: {', '.join(sorted(classes))}")
    return classes[name]


def _region_row(classes: dict[str, DefectClass], image: Image, index: int, region: dict[str, Any]) -> TaskAnnotation:
    where = f"region {index + 1}"
    name = region.get("class")
    if not isinstance(name, str):
        raise InvalidInputError(f"{where} has no 'class'; give the defect class of each region")
    defect_class = _class(classes, name)
    if defect_class.name == OK_CLASS:
        raise InvalidInputError(f"{where} has class ok; a region marks a defect. Give class ok to the whole image "
                                "when it has no defect")
    kinds = [kind for kind in ("box", "polygon") if kind in region]
    if len(kinds) != 1:
        raise InvalidInputError(f"{where} needs one 'box' [x_min, y_min, x_max, y_max] or one 'polygon' [x1, y1, ...]")
    kind = kinds[0]
    values = region[kind]
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               for v in values):
        raise InvalidInputError(f"{where}: {kind} must be a list of numbers")
    if (kind == "box" and len(values) != 4) or (kind == "polygon" and (len(values) < 6 or len(values) % 2)):
        expected = "4 numbers" if kind == "box" else "an even count of at least 6 numbers"
        raise InvalidInputError(f"{where}: {kind} must have {expected}, not {len(values)}")
    shape = Region(kind, defect_class.name, box=tuple(values) if kind == "box" else None,
                   polygon=list(values) if kind == "polygon" else None)
    fitted, problems = fit_region(shape, width=image.width, height=image.height, path=image.path)
    errors = [p.message for p in problems if p.severity == "error"]
    if fitted is None or errors:
        raise InvalidInputError(f"{where}: {errors[0] if errors else 'not valid'}")
    geometry = list(fitted.box) if kind == "box" else list(fitted.polygon)
    return TaskAnnotation(defect_class=defect_class, kind=kind, geometry=[float(v) for v in geometry])
