"""Import and export keep labels on the same pixels: EXIF rotation, declared sizes, empty label files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import select

from defectlab.data.exporter import export_project, plan_export
from defectlab.data.importer import import_path
from defectlab.images import decode_image
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Image as ImageRow


def write_rotated_jpeg(path: Path) -> np.ndarray:
    """Write a JPEG stored 100x40 with EXIF orientation 6; return the displayed (100 high, 40 wide) pixels."""
    displayed = np.full((100, 40), 30, dtype=np.uint8)
    displayed[60:90, 10:30] = 230
    stored = np.rot90(displayed, k=1)  # orientation 6 displays the stored image turned 90 degrees clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(stored)).save(path, format="JPEG", quality=98, exif=exif.tobytes())
    return displayed


def boxes(workspace: Workspace, project: str) -> dict[str, list[list[float]]]:
    with workspace.session() as session:
        project_id = workspace.get_project(session, project).id
        rows = session.scalars(select(ImageRow).where(ImageRow.project_id == project_id)).all()
        return {row.path: [a.geometry for a in row.annotations if a.kind == "box"] for row in rows}


def test_yolo_box_on_rotated_jpeg_covers_defect(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    write_rotated_jpeg(root / "images" / "train" / "part.jpg")
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "part.txt").write_text("0 0.5 0.75 0.5 0.3\n")
    (root / "data.yaml").write_text("names: [dent]\ntrain: images/train\n")
    workspace.create_project("p", "detection")
    import_path(workspace, "p", root)

    [box] = boxes(workspace, "p")["images/train/part.jpg"]
    assert box == [10.0, 60.0, 30.0, 90.0]
    with workspace.session() as session:
        row = session.scalars(select(ImageRow)).one()
        pixels = decode_image(workspace.blobs.get(row.sha256)).pixels
        assert (row.width, row.height) == (40, 100)
    x0, y0, x1, y1 = (int(v) for v in box)
    assert pixels[y0 + 2:y1 - 2, x0 + 2:x1 - 2].mean() > 200


def test_coco_export_writes_displayed_size(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    write_rotated_jpeg(root / "images" / "train" / "part.jpg")
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "part.txt").write_text("0 0.5 0.75 0.5 0.3\n")
    (root / "data.yaml").write_text("names: [dent]\ntrain: images/train\n")
    workspace.create_project("p", "detection")
    import_path(workspace, "p", root)

    export_set, _ = plan_export(workspace, "p", "coco")
    export_project(export_set, tmp_path / "coco", "coco")
    [manifest] = list((tmp_path / "coco").rglob("*.json"))
    coco = json.loads(manifest.read_text())
    assert (coco["images"][0]["width"], coco["images"][0]["height"]) == (40, 100)
    assert coco["annotations"][0]["bbox"] == [10.0, 60.0, 20.0, 30.0]


def test_declared_size_contradiction_reported(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "coco"
    write_rotated_jpeg(root / "part.jpg")
    coco = {
        "images": [{"id": 1, "file_name": "part.jpg", "width": 100, "height": 40}],
        "categories": [{"id": 0, "name": "dent"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 0, "bbox": [10, 60, 20, 30]}],
    }
    (root / "labels.json").write_text(json.dumps(coco))
    workspace.create_project("p", "detection")
    report = import_path(workspace, "p", root)
    assert any("declares 100x40" in problem.message and "40x100" in problem.message for problem in report.problems)


def test_empty_versus_missing_label_survives_export(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    for name in ("good_01", "unk_02", "good_03"):
        (root / "images" / "train").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((20, 20), 80, np.uint8)).save(root / "images" / "train" / f"{name}.png")
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "good_01.txt").write_text("")
    (root / "labels" / "train" / "good_03.txt").write_text("\n")
    (root / "data.yaml").write_text("names: [dent]\ntrain: images/train\n")
    workspace.create_project("p", "detection")
    report = import_path(workspace, "p", root)
    assert report.per_class == {"ok": 2, "(unlabeled)": 1}

    export_set, _ = plan_export(workspace, "p", "yolo")
    export_project(export_set, tmp_path / "out", "yolo")
    label_files = {path.stem: path.read_text() for path in (tmp_path / "out").rglob("*.txt")}
    assert label_files.get("good_01", None) is not None
    assert label_files["good_01"].strip() == ""
    assert label_files["good_03"].strip() == ""
    assert "unk_02" not in label_files
