"""Snapshots: frozen, versioned copies of a project's images, labels and splits.

A model is always trained from a snapshot, so its report can list exactly
which images and labels it saw. The content is a JSON blob in the blob store.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from defectlab.formats.records import OK_CLASS
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, Image, Project, Snapshot

__all__ = ["SnapshotImage", "SnapshotContent", "class_label", "freeze_image", "image_label", "load_snapshot", "take_snapshot"]


@dataclass
class SnapshotImage:
    """One image as frozen in a snapshot; ``label`` is None when unlabeled."""

    image_id: int
    path: str
    sha256: str
    width: int
    height: int
    channels: int
    bit_depth: int
    split: str | None
    label: str | None
    regions: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class SnapshotContent:
    snapshot_id: int
    project: str
    task: str
    classes: list[str]
    images: list[SnapshotImage]


def image_label(annotations: list[Annotation]) -> str | None:
    """Return the image-level class: the newest explicit class, else the first region's class."""
    given = class_label(annotations)
    if given is not None:
        return given
    for annotation in annotations:
        return annotation.defect_class.name
    return None


def class_label(annotations: list[Annotation]) -> str | None:
    """Return the newest image-level class annotation's class; annotations come in the order they were made."""
    for annotation in reversed(annotations):
        if annotation.kind == "class":
            return annotation.defect_class.name
    return None


def take_snapshot(workspace: Workspace, session: Session, project: Project) -> SnapshotContent:
    """Freeze the project's current images, labels and splits into a new snapshot, leaving out excluded images."""
    images = session.scalars(
        select(Image).where(Image.project_id == project.id, Image.excluded.is_(False)).order_by(Image.path)
        .options(selectinload(Image.annotations).selectinload(Annotation.defect_class))
    ).all()
    frozen = [freeze_image(image) for image in images]
    classes = [defect_class.name for defect_class in project.classes]
    payload = {"project": project.name, "task": project.task, "classes": classes,
               "images": [asdict(image) for image in frozen]}
    digest = workspace.blobs.put(json.dumps(payload, sort_keys=True).encode("utf-8"))

    snapshot = Snapshot(project_id=project.id, content_sha256=digest, image_count=len(frozen))
    session.add(snapshot)
    session.flush()
    return SnapshotContent(snapshot.id, project.name, project.task, classes, frozen)


def load_snapshot(workspace: Workspace, snapshot: Snapshot) -> SnapshotContent:
    payload = json.loads(workspace.blobs.get(snapshot.content_sha256))
    images = [SnapshotImage(**image) for image in payload["images"]]
    return SnapshotContent(snapshot.id, payload["project"], payload["task"], payload["classes"], images)


def freeze_image(image: Image) -> SnapshotImage:
    regions = [
        {"kind": a.kind, "class": a.defect_class.name, "geometry": a.geometry, "mask_sha256": a.mask_sha256}
        for a in image.annotations if a.kind != "class"
    ]
    return SnapshotImage(
        image_id=image.id, path=image.path, sha256=image.sha256, width=image.width, height=image.height,
        channels=image.channels, bit_depth=image.bit_depth, split=image.split,
        label=image_label(image.annotations), regions=regions, metadata=dict(image.meta or {}),
    )


def is_defect_label(label: str) -> bool:
    return label != OK_CLASS
