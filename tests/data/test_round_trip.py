"""Export a project in every writer format and import it again with detection: nothing is lost or invented.

Each case builds a source project from a mix that the format can hold: ok
images, several defect classes, masks or boxes, splits and unlabeled
images. The test exports it, imports the export into a new project without
naming the format, and compares the two projects image by image. Images are
matched by content, because some formats put them under new folders.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from defectlab.data.exporter import export_project, plan_export
from defectlab.data.importer import import_path
from defectlab.formats import detect_format, write_dataset
from defectlab.formats.export import ExportSet
from defectlab.formats.records import OK_CLASS, ClassSpec, ExportImage, Region
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Image as ImageRow

WIDTH, HEIGHT = 32, 24


@dataclass(frozen=True)
class Spec:
    """One source image: its path, split and label (``ok``, a class, regions, or unlabeled)."""

    path: str
    split: str | None = None
    label: str | None = None
    regions: tuple[tuple[str, str], ...] = ()
    labeled: bool = True
    metadata: tuple[tuple[str, str], ...] = ()


def region(kind: str, class_name: str, index: int) -> Region:
    top = 2 + 3 * index
    if kind == "box":
        return Region("box", class_name, box=(4.0, float(top), 12.0, float(top + 2)))
    if kind == "polygon":
        return Region("polygon", class_name, polygon=[14.0, float(top), 22.0, float(top), 18.0, float(top + 2)])
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[top : top + 2, 24:30] = True
    return Region("mask", class_name, mask=mask)


def write_source(root: Path, specs: list[Spec]) -> Path:
    """Write the specs as a native dataset, each image with its own pixels."""
    files = root / "files"
    files.mkdir(parents=True)
    images = []
    for number, spec in enumerate(specs):
        pixels = np.full((HEIGHT, WIDTH, 3), (number * 9) % 256, dtype=np.uint8)
        pixels[0, 0] = (number, 7, 200)
        source = files / f"{number}.png"
        Image.fromarray(pixels).save(source)
        regions = [region(kind, name, index) for index, (kind, name) in enumerate(spec.regions)]
        images.append(ExportImage(
            path=spec.path, source=source, width=WIDTH, height=HEIGHT, split=spec.split, label=spec.label,
            regions=regions, labeled=spec.labeled, metadata=dict(spec.metadata),
        ))
    classes = [ClassSpec(OK_CLASS), ClassSpec("scratch"), ClassSpec("dent")]
    write_dataset(ExportSet(classes=classes, images=images), root / "native", "native")
    return root / "native"


def describe(workspace: Workspace, project: str) -> dict[str, tuple]:
    """Map each image's content hash to (path, split, image-level class, sorted (kind, class) regions)."""
    with workspace.session() as session:
        project_id = workspace.get_project(session, project).id
        rows = session.scalars(select(ImageRow).where(ImageRow.project_id == project_id)).all()
        described = {}
        for row in rows:
            label = next((a.defect_class.name for a in row.annotations if a.kind == "class"), None)
            regions = tuple(sorted((a.kind, a.defect_class.name) for a in row.annotations if a.kind != "class"))
            described[row.sha256] = (row.path, row.split, label, regions)
        return described


def label_counts(described: dict[str, tuple]) -> Counter:
    counts: Counter = Counter()
    for _, _, label, regions in described.values():
        counts[label or "(no image-level class)"] += 1
        counts.update(name for _, name in regions)
    return counts


MIXED_SPLITS = [
    Spec("a/ok_train.png", "train", OK_CLASS),
    Spec("a/ok_dev.png", "dev", OK_CLASS),
    Spec("b/ok_test.png", "test", OK_CLASS),
    Spec("b/ok_none.png", None, OK_CLASS),
    Spec("unlabeled.png", "train", labeled=False),
    Spec("unlabeled_none.png", None, labeled=False),
]

CLASSIFICATION = [
    *MIXED_SPLITS,
    Spec("c/scratch_1.png", "train", "scratch"),
    Spec("c/dent_1.png", "dev", "dent"),
    Spec("c/dent_2.png", None, "dent"),
]

# Written by the folders writer as train/good/ and test/<class>/, which is
# close to MVTec but has no ground_truth/ folder.
CLASSIFICATION_OK_TRAIN = [
    Spec("ok_train.png", "train", OK_CLASS),
    Spec("ok_test.png", "test", OK_CLASS),
    Spec("scratch.png", "test", "scratch"),
]

BOXES = [
    *MIXED_SPLITS,
    Spec("c/scratch.png", "train", regions=(("box", "scratch"),)),
    Spec("c/both.png", "dev", regions=(("box", "scratch"), ("box", "dent"))),
    Spec("c/dent.png", "test", regions=(("box", "dent"), ("box", "dent"))),
    Spec("c/dent_none.png", None, regions=(("box", "dent"),)),
]

BOXES_WITHOUT_DEV = [spec for spec in BOXES if spec.split != "dev"]

SHAPES = [
    *MIXED_SPLITS,
    Spec("c/box.png", "train", regions=(("box", "scratch"),), metadata=(("station", "3"),)),
    Spec("c/polygon.png", "dev", regions=(("polygon", "dent"), ("box", "scratch"))),
    Spec("c/mask.png", "test", regions=(("mask", "dent"),), metadata=(("lot", "L7"),)),
]

MASKS = [
    Spec("ok_1.png", label=OK_CLASS),
    Spec("sub/ok_2.png", label=OK_CLASS),
    Spec("unlabeled.png", labeled=False),
    Spec("scratch.png", regions=(("mask", "scratch"),)),
    Spec("sub/both.png", regions=(("mask", "scratch"), ("mask", "dent"))),
]

MVTEC = [
    Spec("bottle/train/good/000.png", "train", OK_CLASS, metadata=(("object", "bottle"),)),
    Spec("bottle/train/good/001.png", "train", OK_CLASS, metadata=(("object", "bottle"),)),
    Spec("bottle/test/good/000.png", "test", OK_CLASS, metadata=(("object", "bottle"),)),
    Spec("bottle/test/scratch/000.png", "test", regions=(("mask", "scratch"),), metadata=(("object", "bottle"),)),
    Spec("bottle/test/dent/000.png", "test", regions=(("mask", "dent"),), metadata=(("object", "bottle"),)),
    Spec("cable/train/good/000.png", "train", OK_CLASS, metadata=(("object", "cable"),)),
    Spec("cable/test/dent/000.png", "test", regions=(("mask", "dent"),), metadata=(("object", "cable"),)),
]

MVTEC_WITHOUT_TRAINING_IMAGES = [
    Spec("test/good/000.png", "test", OK_CLASS),
    Spec("test/scratch/000.png", "test", regions=(("mask", "scratch"),)),
]

# format, task, source images, and whether the format keeps: everything (no loss listed), splits, project paths
CASES = [
    ("native", "segmentation", SHAPES, True, True, True),
    ("folders", "classification", CLASSIFICATION, False, True, False),
    ("folders", "classification", CLASSIFICATION_OK_TRAIN, False, True, False),
    ("masks", "segmentation", MASKS, True, False, True),
    ("masks", "segmentation", MVTEC, False, True, True),
    ("mvtec", "segmentation", MVTEC, True, True, True),
    ("mvtec", "segmentation", MVTEC_WITHOUT_TRAINING_IMAGES, True, True, True),
    ("yolo", "detection", BOXES, True, True, False),
    ("yolo", "detection", BOXES_WITHOUT_DEV, True, True, False),
    ("coco", "segmentation", SHAPES, True, True, True),
    ("voc", "detection", BOXES, True, True, True),
]


@pytest.mark.parametrize(("format", "task", "specs", "lossless", "keeps_splits", "keeps_paths"), CASES,
                         ids=[f"{case[0]}-{index}" for index, case in enumerate(CASES)])
def test_export_reimport_keeps_images_and_labels(
    workspace: Workspace, tmp_path: Path, format: str, task: str, specs: list[Spec], lossless: bool,
    keeps_splits: bool, keeps_paths: bool,
) -> None:
    workspace.create_project("source", task)
    source_report = import_path(workspace, "source", write_source(tmp_path, specs))
    assert source_report.added == len(specs)
    export_set, losses = plan_export(workspace, "source", format)
    if lossless:
        assert losses == []
    export_project(export_set, tmp_path / "out", format)

    assert detect_format(tmp_path / "out") == format
    workspace.create_project("copy", task)
    report = import_path(workspace, "copy", tmp_path / "out")
    before, after = describe(workspace, "source"), describe(workspace, "copy")

    assert report.format == format
    assert [problem for problem in report.problems if problem.severity == "error"] == []
    assert set(after) == set(before)
    assert label_counts(after) == label_counts(before)
    for digest, (path, split, label, regions) in before.items():
        assert (after[digest][2], after[digest][3]) == (label, regions), path
        if keeps_splits:
            assert after[digest][1] == split, path
        if keeps_paths:
            assert after[digest][0] == path
