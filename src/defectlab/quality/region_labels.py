"""Suspicious labels of segmentation and detection projects, from out-of-fold region models and ``cleanlab``.

1. The labeled images are dealt into ``FOLDS`` folds, with images with and
   without regions spread evenly. Each fold's images are predicted by a model
   trained on the other folds, so no image is judged by a model that learned it.
2. Detection projects: the fold models are box detectors, and
   ``cleanlab.object_detection`` scores every image's boxes against the
   predicted ones (``defectlab.quality.box_labels``).
3. Segmentation projects: the fold models are segmenters, and
   ``cleanlab.segmentation`` scores every image's class map against the
   predicted pixel probabilities (``defectlab.quality.mask_labels``).

Each flagged image becomes a ``suspicious_label`` issue with the fields that
classification issues have (``label`` is the image's label, ``suggested``,
``score`` = 1 - label quality), plus ``problem`` (what is probably wrong),
``box`` (where, ``[x_min, y_min, x_max, y_max]`` in the image's pixels),
``given`` and ``suggested`` for that place.

The fold models are cheaper than the project's model: fewer epochs (see each
module) and whole images at the trainer's input size, never tiles.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from defectlab.data.pixels import StoredPixels
from defectlab.data.snapshot import SnapshotImage, freeze_image
from defectlab.errors import InvalidInputError
from defectlab.formats.records import OK_CLASS
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, Image

__all__ = [
    "FOLDS",
    "RegionSearch",
    "assign_folds",
    "describe_box",
    "find_suspicious_regions",
    "region_issue",
    "region_search_notes",
    "search_region_labels",
]

logger = logging.getLogger(__name__)

FOLDS = 3
"""Fold models per search. Three keep the search to a few training runs on a 2-core CPU."""


def find_suspicious_regions(workspace: Workspace, project_name: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Search a segmentation or detection project for suspicious labels.

    Returns:
        The ``suspicious_label`` issues, worst first, and notes: plain sentences
        about images left out of the search or a search that could not run.

    Raises:
        NotFoundError: The project does not exist.
        InvalidInputError: The project is neither a segmentation nor a detection project.
    """
    search = search_region_labels(workspace, project_name)
    return search.issues, search.notes


@dataclass(frozen=True)
class RegionSearch:
    """Result of the region label search.

    Attributes:
        issues: ``suspicious_label`` issues, worst first.
        notes: Plain sentences about images left out or a search that could not run.
        images: The searched images, in the order of ``quality``.
        quality: cleanlab label quality per searched image, float64 ``(N,)`` in 0..1; low is suspicious.
    """

    issues: list[dict[str, Any]]
    notes: list[str]
    images: list[SnapshotImage]
    quality: np.ndarray


def search_region_labels(workspace: Workspace, project_name: str) -> RegionSearch:
    """Search as ``find_suspicious_regions`` does, and keep every searched image's label quality."""
    task, images, class_names = _load_labeled(workspace, project_name)
    if task not in ("segmentation", "detection"):
        raise InvalidInputError(f"project {project_name!r} is a {task} project; the region label search works on "
                                "segmentation and detection projects only")

    searchable = [image for image in images if image.regions or image.label == OK_CLASS]
    notes = region_search_notes(task, images, searchable)
    if not _enough_images(searchable):
        return RegionSearch([], notes, [], np.zeros(0))

    pixels = StoredPixels(workspace.blobs, [image.sha256 for image in searchable], [image.path for image in searchable])
    folds = assign_folds([bool(image.regions) for image in searchable])
    logger.info("searching %d labeled images of %s for suspicious %s labels with %d fold models", len(searchable),
                project_name, task, FOLDS)
    if task == "detection":
        from defectlab.quality.box_labels import find_suspicious_boxes

        issues, quality = find_suspicious_boxes(workspace, searchable, pixels, class_names, folds)
    else:
        from defectlab.quality.mask_labels import find_suspicious_masks

        issues, quality = find_suspicious_masks(workspace, searchable, pixels, class_names, folds)
    return RegionSearch(issues, notes, searchable, quality)


def _load_labeled(workspace: Workspace, project_name: str) -> tuple[str, list[SnapshotImage], list[str]]:
    """Return the task, the labeled images in id order with their regions, and ``ok`` plus the defect classes."""
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        rows = session.scalars(
            select(Image).where(Image.project_id == project.id).order_by(Image.id)
            .options(selectinload(Image.annotations).selectinload(Annotation.defect_class))
        ).all()
        images = [image for image in (freeze_image(row) for row in rows) if image.label is not None]
        class_names = [OK_CLASS, *sorted(item.name for item in project.classes if item.name != OK_CLASS)]
        return project.task, images, class_names


def _enough_images(searchable: Sequence[SnapshotImage]) -> bool:
    """Return whether every fold model can train on at least one image with a region."""
    return len(searchable) >= 2 * FOLDS and sum(bool(image.regions) for image in searchable) >= FOLDS


def region_search_notes(task: str, images: Sequence[SnapshotImage], searchable: Sequence[SnapshotImage]) -> list[str]:
    """Return the notes about labeled images left out of the search, or about a search that cannot run.

    Args:
        task: ``segmentation`` or ``detection``.
        images: The project's labeled images.
        searchable: The labeled images that have regions or are labeled ``ok``.
    """
    notes = []
    unmarked = len(images) - len(searchable)
    if unmarked:
        notes.append(f"The search for suspicious labels left out {unmarked} "
                     f"{'image' if unmarked == 1 else 'images'} labeled with a defect class but without a region, "
                     "because only drawn regions can be checked against a model's regions.")
    with_regions = sum(bool(image.regions) for image in searchable)
    if not _enough_images(searchable):
        notes.append(f"Suspicious labels were not searched, because the search trains {FOLDS} {task} models on "
                     f"folds of the labeled images and needs at least {2 * FOLDS} labeled images, {FOLDS} of them "
                     f"with regions; this project has {len(searchable)}, {with_regions} with regions.")
    return notes


def assign_folds(has_region: Sequence[bool], *, folds: int = FOLDS, seed: int = 0) -> np.ndarray:
    """Deal images into folds so that images with and without regions are spread evenly.

    Within each group the images are shuffled with ``seed``, then dealt in turn,
    so fold sizes differ by at most one per group.

    Returns:
        The fold of each image, int64 ``(N,)`` in ``0..folds-1``.
    """
    flags = np.asarray(has_region, dtype=bool)
    rng = np.random.default_rng(seed)
    result = np.zeros(len(flags), dtype=np.int64)
    for group in (True, False):
        members = rng.permutation(np.flatnonzero(flags == group))
        result[members] = np.arange(len(members)) % folds
    return result


def region_issue(image: SnapshotImage, quality: float, *, problem: str, box: Sequence[float] | None, given: str,
                 suggested: str, detail: str, action: str, **extra: Any) -> dict[str, Any]:
    """Return one ``suspicious_label`` issue with the fields every issue has, plus where and what is wrong.

    Args:
        quality: cleanlab label quality of the image, 0..1; the issue's score is ``1 - quality``.
        problem: What is probably wrong, such as ``missing_box``.
        box: ``[x_min, y_min, x_max, y_max]`` of the place in question, in the image's pixels.
    """
    return {"kind": "suspicious_label", "image_id": image.image_id, "path": image.path, "split": image.split,
            "label": image.label, "score": round(1.0 - float(quality), 6), "detail": detail, "action": action,
            "problem": problem, "box": None if box is None else [round(float(value), 1) for value in box],
            "given": given, "suggested": suggested, **extra}


def describe_box(box: Sequence[float]) -> str:
    """Return ``x 10-30, y 40-60``: a box's extent in whole pixels."""
    x_min, y_min, x_max, y_max = (int(round(float(value))) for value in box)
    return f"x {x_min}-{x_max}, y {y_min}-{y_max}"
