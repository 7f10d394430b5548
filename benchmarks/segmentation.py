"""DRAFT segmentation benchmark."""

from __future__ import annotations

import io
import logging
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image as PILImage, ImageDraw
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from defectlab.data.importer import import_path
from defectlab.data.pixels import StoredPixels, Subset
from defectlab.data.snapshot import SnapshotImage, freeze_image
from defectlab.formats.records import OK_CLASS
from defectlab.quality.duplicates import group_near_duplicates
from defectlab.training.segmentation import IGNORE_INDEX
from defectlab.training.splits import assign_splits
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, Image

REPOSITORY = Path(__file__).resolve().parents[1]
DATASETS = REPOSITORY.parent / "shared" / "datasets"

logger = logging.getLogger("benchmarks.segmentation")


@dataclass
class Project:
    name: str
    class_names: list[str]
    images: list[SnapshotImage]
    pixels: StoredPixels
    masks: "ClassMasks"

    def indices(self, split: str) -> list[int]:
        return [i for i, image in enumerate(self.images) if image.split == split]


class ClassMasks(Sequence):
    """Per snapshot image, a class-index mask ``(H, W)`` uint8 drawn from its regions."""

    def __init__(self, workspace: Workspace, images: Sequence[SnapshotImage], class_names: Sequence[str]) -> None:
        self.workspace = workspace
        self.images = list(images)
        self.index = {name: position for position, name in enumerate(class_names)}

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> np.ndarray:
        image = self.images[index]
        mask = np.zeros((image.height, image.width), dtype=np.uint8)
        if image.label not in (None, OK_CLASS) and not image.regions:
            mask[:] = IGNORE_INDEX
        for region in image.regions:
            mask[_region_pixels(self.workspace, region, mask.shape)] = self.index[region["class"]]
        return mask


def _region_pixels(workspace: Workspace, region: dict, shape: tuple[int, int]) -> np.ndarray:
    if region["kind"] == "mask":
        return np.asarray(PILImage.open(io.BytesIO(workspace.blobs.get(region["mask_sha256"]))).convert("L")) > 0
    canvas = PILImage.new("1", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(canvas)
    if region["kind"] == "box":
        draw.rectangle(region["geometry"], fill=1)
    else:
        points = region["geometry"]
        draw.polygon(list(zip(points[0::2], points[1::2])), fill=1)
    return np.asarray(canvas, dtype=bool)


def load_project(workspace: Workspace, name: str, source: Path) -> Project:
    workspace.create_project(name, "segmentation")
    import_path(workspace, name, source)
    with workspace.session() as session:
        project = workspace.get_project(session, name)
        classes = [defect_class.name for defect_class in project.classes if defect_class.name != OK_CLASS]
        rows = session.scalars(
            select(Image).where(Image.project_id == project.id).order_by(Image.path)
            .options(selectinload(Image.annotations).selectinload(Annotation.defect_class))
        ).all()
        images = [freeze_image(row) for row in rows if True]
    images = [image for image in images if image.label is not None]
    pixels = StoredPixels(workspace.blobs, [image.sha256 for image in images], [image.path for image in images])
    groups = group_near_duplicates(pixels)
    sizes = Counter(groups)
    near = {image.image_id: f"group-{group}" for image, group in zip(images, groups) if sizes[group] > 1}
    assigned = assign_splits(images, task="segmentation", near=near)
    images = [replace(image, split=assigned.get(image.image_id, image.split)) for image in images]
    class_names = [OK_CLASS, *sorted(classes)]
    logger.info("%s: %d images, %d near-duplicate groups, splits %s", name, len(images),
                sum(1 for size in sizes.values() if size > 1), Counter(image.split for image in images))
    return Project(name, class_names, images, pixels, ClassMasks(workspace, images, class_names))
