"""Import into a workspace: decoding, quarantine, names, sizes and atomicity."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from defectlab.data import importer
from defectlab.data.importer import import_path
from defectlab.errors import InvalidInputError
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, Image as ImageRow


def save(path: Path, pixels: np.ndarray, fmt: str | None = None, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt, **options)
    return path


def gray(value: int, size: int = 32) -> np.ndarray:
    return np.full((size, size), value, dtype=np.uint8)


def image_rows(workspace: Workspace, project: str) -> dict[str, ImageRow]:
    with workspace.session() as session:
        project_id = workspace.get_project(session, project).id
        rows = session.scalars(select(ImageRow).where(ImageRow.project_id == project_id)).all()
        return {row.path: row for row in rows}


def labels(workspace: Workspace, project: str) -> dict[str, list[tuple[str, str]]]:
    with workspace.session() as session:
        project_id = workspace.get_project(session, project).id
        rows = session.scalars(select(ImageRow).where(ImageRow.project_id == project_id)).all()
        return {row.path: [(a.kind, a.defect_class.name) for a in row.annotations] for row in rows}


def test_folder_import_counts_and_labels(workspace: Workspace, tmp_path: Path) -> None:
    for index in range(3):
        save(tmp_path / "data" / "good" / f"{index}.png", gray(100 + index))
    save(tmp_path / "data" / "scratch" / "0.png", gray(10))
    workspace.create_project("p", "classification")
    report = import_path(workspace, "p", tmp_path / "data")
    assert report.added == 4
    assert report.per_class == {"ok": 3, "scratch": 1}
    assert labels(workspace, "p")["scratch/0.png"] == [("class", "scratch")]


def test_16bit_stored_bytes_unchanged(workspace: Workspace, tmp_path: Path) -> None:
    pixels = np.full((64, 64), 900, dtype=np.uint16)
    pixels[10:30, 10:30] = 1150
    path = save(tmp_path / "data" / "good" / "a.png", pixels)
    save(tmp_path / "data" / "good" / "b.png", pixels + 1)
    workspace.create_project("p", "anomaly")
    import_path(workspace, "p", tmp_path / "data")
    row = image_rows(workspace, "p")["good/a.png"]
    assert workspace.blobs.get(row.sha256) == path.read_bytes()
    assert row.bit_depth == 12
    assert row.channels == 1


def test_broken_files_quarantined_rest_imported(workspace: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "data" / "good"
    save(folder / "fine.png", gray(50))
    jpeg = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(jpeg, "JPEG")
    (folder / "cut.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) * 6 // 10])
    (folder / "empty.jpg").write_bytes(b"")
    png = io.BytesIO()
    Image.fromarray(gray(70)).save(png, "PNG")
    (folder / "really_png.jpg").write_bytes(png.getvalue())
    workspace.create_project("p", "classification")
    report = import_path(workspace, "p", tmp_path / "data")
    assert sorted(image_rows(workspace, "p")) == ["good/fine.png", "good/really_png.jpg"]
    assert report.skipped == 2
    problems = {problem.path: problem.message for problem in report.problems}
    assert "truncated" in problems["good/cut.jpg"]
    assert "empty" in problems["good/empty.jpg"]
    assert image_rows(workspace, "p")["good/really_png.jpg"].format == "PNG"


def test_unicode_names_kept(workspace: Workspace, tmp_path: Path) -> None:
    names = ["défaut_ø.png", "划痕 01.jpg", "scratch 2.png"]
    for name in names:
        save(tmp_path / "Prüfung Daten" / "kratzer" / name, gray(30), fmt="PNG" if name.endswith("png") else "JPEG")
    save(tmp_path / "Prüfung Daten" / "good" / "gut.png", gray(90))
    workspace.create_project("p", "classification")
    import_path(workspace, "p", tmp_path / "Prüfung Daten")
    assert {f"kratzer/{name}" for name in names} <= set(image_rows(workspace, "p"))


def test_same_file_name_in_two_folders(workspace: Workspace, tmp_path: Path) -> None:
    save(tmp_path / "data" / "ok" / "lineA" / "0001.png", gray(10))
    save(tmp_path / "data" / "ok" / "lineB" / "0001.png", gray(20))
    workspace.create_project("p", "classification")
    report = import_path(workspace, "p", tmp_path / "data")
    rows = image_rows(workspace, "p")
    assert report.added == 2
    assert len(rows) == 2
    assert len({row.sha256 for row in rows.values()}) == 2


def test_reimport_is_unchanged(workspace: Workspace, tmp_path: Path) -> None:
    save(tmp_path / "data" / "good" / "a.png", gray(10))
    workspace.create_project("p", "classification")
    import_path(workspace, "p", tmp_path / "data")
    again = import_path(workspace, "p", tmp_path / "data")
    assert again.added == 0
    assert again.unchanged == 1


def test_failed_import_leaves_project_unchanged(workspace: Workspace, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for index in range(5):
        save(tmp_path / "data" / "good" / f"{index}.png", gray(index))
    workspace.create_project("p", "classification")
    original = importer._store_image
    calls = {"count": 0}

    def failing_store(*args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 3:
            raise KeyboardInterrupt("killed half-way")
        return original(*args, **kwargs)

    monkeypatch.setattr(importer, "_store_image", failing_store)
    with pytest.raises(KeyboardInterrupt):
        import_path(workspace, "p", tmp_path / "data")
    with workspace.session() as session:
        assert session.scalar(select(func.count(ImageRow.id))) == 0
        assert session.scalar(select(func.count(Annotation.id))) == 0
        assert [c.name for c in workspace.get_project(session, "p").classes] == ["ok"]


def test_metadata_csv_attached_and_checked(workspace: Workspace, tmp_path: Path) -> None:
    save(tmp_path / "data" / "good" / "a.png", gray(10))
    csv_path = tmp_path / "meta.csv"
    csv_path.write_text("path,station,lot\ngood/a.png,S1,42\ngood/missing.png,S2,1\n")
    workspace.create_project("p", "classification")
    report = import_path(workspace, "p", tmp_path / "data", metadata_csv=csv_path)
    assert image_rows(workspace, "p")["good/a.png"].meta == {"station": "S1", "lot": "42"}
    assert any(p.path == "good/missing.png" for p in report.problems)


def test_metadata_csv_without_path_column(workspace: Workspace, tmp_path: Path) -> None:
    save(tmp_path / "data" / "good" / "a.png", gray(10))
    csv_path = tmp_path / "meta.csv"
    csv_path.write_text("file,station\na.png,S1\n")
    workspace.create_project("p", "classification")
    with pytest.raises(InvalidInputError, match="line 1.*'path' column"):
        import_path(workspace, "p", tmp_path / "data", metadata_csv=csv_path)


def test_invalid_split_rejected(workspace: Workspace, tmp_path: Path) -> None:
    workspace.create_project("p", "classification")
    with pytest.raises(InvalidInputError, match="split 'validation'"):
        import_path(workspace, "p", tmp_path, split="validation")


def test_metadata_row_with_missing_value_warned(workspace: Workspace, tmp_path: Path) -> None:
    save(tmp_path / "data" / "good" / "a.png", gray(10))
    save(tmp_path / "data" / "good" / "b.png", gray(20))
    csv_path = tmp_path / "meta.csv"
    csv_path.write_text("path,station,lot\ngood/a.png,S1\ngood/b.png,S2,7,extra\n")
    workspace.create_project("p", "classification")

    report = import_path(workspace, "p", tmp_path / "data", metadata_csv=csv_path)
    warnings = {problem.line: problem for problem in report.problems if problem.path == str(csv_path)}

    assert image_rows(workspace, "p")["good/a.png"].meta == {"station": "S1"}
    assert "no value for lot" in warnings[2].message
    assert warnings[2].severity == "warning"
    assert "extra values ['extra'] are ignored" in warnings[3].message


def test_mask_of_other_aspect_ratio_rejected(workspace: Workspace, tmp_path: Path) -> None:
    square = np.zeros((32, 32), dtype=np.uint8)
    square[4:12, 4:12] = 255
    half = np.zeros((24, 32), dtype=np.uint8)
    half[4:12, 4:12] = 255
    save(tmp_path / "data" / "images" / "wrong.png", gray(10, size=64)[:48])
    save(tmp_path / "data" / "masks" / "wrong.png", square)
    save(tmp_path / "data" / "images" / "half.png", gray(20, size=64)[:48])
    save(tmp_path / "data" / "masks" / "half.png", half)
    workspace.create_project("p", "segmentation")

    report = import_path(workspace, "p", tmp_path / "data")
    problems = {problem.path: problem for problem in report.problems}

    assert problems["images/wrong.png"].severity == "error"
    assert "is 32x32 but the image is 64x48" in problems["images/wrong.png"].message
    assert labels(workspace, "p")["images/wrong.png"] == []
    assert problems["images/half.png"].severity == "warning"
    assert labels(workspace, "p")["images/half.png"] == [("mask", "defect")]


def test_summary_reports_stored_split(workspace: Workspace, tmp_path: Path) -> None:
    save(tmp_path / "data" / "good" / "a.png", gray(10))
    workspace.create_project("p", "classification")
    import_path(workspace, "p", tmp_path / "data", split="test")

    again = import_path(workspace, "p", tmp_path / "data")

    assert again.unchanged == 1
    assert again.per_split == {"test": 1}


def _yolo_dataset(root: Path) -> None:
    save(root / "images" / "train" / "a.png", gray(90, 64))
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.25 0.25\n", encoding="utf-8")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nnames: [scratch]\n", encoding="utf-8")


def test_broken_dataset_yaml_changes_nothing(workspace: Workspace, tmp_path: Path) -> None:
    _yolo_dataset(tmp_path / "data")
    workspace.create_project("p", "detection")
    import_path(workspace, "p", tmp_path / "data")
    before = labels(workspace, "p")
    (tmp_path / "data" / "data.yaml").write_text("path: .\ntrain: images/train\nnames: [scratch\n", encoding="utf-8")

    with pytest.raises(InvalidInputError) as raised:
        import_path(workspace, "p", tmp_path / "data")

    message = str(raised.value)
    assert "data.yaml: dataset YAML is invalid (line " in message
    assert "Nothing was imported" in message
    assert "\n" not in message
    assert before["images/train/a.png"] == [("box", "scratch")]
    assert labels(workspace, "p") == before


def test_dataset_yaml_that_is_a_list_rejected(workspace: Workspace, tmp_path: Path) -> None:
    _yolo_dataset(tmp_path / "data")
    (tmp_path / "data" / "data.yaml").write_text("- scratch\n- dent\n", encoding="utf-8")
    workspace.create_project("p", "detection")

    with pytest.raises(InvalidInputError, match="data.yaml: dataset YAML is not a mapping"):
        import_path(workspace, "p", tmp_path / "data", format="yolo")

    assert image_rows(workspace, "p") == {}


def test_invalid_json_named_with_line(workspace: Workspace, tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"images": [\n  {"id": 1,}\n]}', encoding="utf-8")
    workspace.create_project("p", "detection")

    with pytest.raises(InvalidInputError, match=r"broken.json is not valid JSON \(line 2, column"):
        import_path(workspace, "p", tmp_path / "broken.json")
