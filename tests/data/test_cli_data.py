"""The import, export and project commands from outside: messages, prompts, exit codes and help."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab import cli
from defectlab.formats import FORMATS


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """Run the CLI in this process; return (exit status, stdout, stderr)."""

    def invoke(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["defectlab", "--workspace", str(tmp_path / "ws"), *args])
        with pytest.raises(SystemExit) as exited:
            cli.main()
        captured = capsys.readouterr()
        return exited.value.code or 0, captured.out, captured.err

    return invoke


def write_png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16), value, dtype=np.uint8)).save(path)


def write_voc(root: Path) -> None:
    write_png(root / "JPEGImages" / "a.png", 10)
    write_png(root / "JPEGImages" / "b.png", 20)
    objects = "".join(
        f"<object><name>{name}</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>{x}</xmax><ymax>5</ymax></bndbox></object>"
        for name, x in (("scratch", 4), ("dent", 6), ("dent", 8))
    )
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "a.xml").write_text(f"<annotation><filename>a.png</filename>{objects}</annotation>")
    (root / "Annotations" / "b.xml").write_text("<annotation><filename>b.png</filename></annotation>")


def write_masks(root: Path) -> None:
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[2:6, 2:6] = 255
    write_png(root / "images" / "a.png", 30)
    (root / "masks").mkdir(parents=True)
    Image.fromarray(mask).save(root / "masks" / "a.png")


def test_export_without_terminal_says_rerun_with_yes(run, tmp_path: Path) -> None:
    write_voc(tmp_path / "voc")
    run("project", "create", "p", "--task", "detection")
    run("import", "p", str(tmp_path / "voc"), "--split", "train")

    status, _, err = run("export", "p", str(tmp_path / "out"), "--format", "folders")

    assert status == 2
    assert "rerun with --yes" in err
    assert "Aborted" not in err
    assert not (tmp_path / "out").exists()


def test_export_asks_nothing_when_nothing_lost(run, tmp_path: Path) -> None:
    write_masks(tmp_path / "masks")
    run("project", "create", "p", "--task", "segmentation")
    run("import", "p", str(tmp_path / "masks"))
    masks_status, _, masks_err = run("export", "p", str(tmp_path / "out_masks"), "--format", "masks")
    run("import", "p", str(tmp_path / "masks"), "--split", "test")

    coco_status, coco_out, coco_err = run("export", "p", str(tmp_path / "out_coco"), "--format", "coco")

    assert (masks_status, masks_err) == (0, "")
    assert (coco_status, coco_err) == (0, "")
    assert "note: splits and metadata of 1 image(s)" in coco_out


def test_export_asks_on_terminal(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_voc(tmp_path / "voc")
    run("project", "create", "p", "--task", "detection")
    run("import", "p", str(tmp_path / "voc"))
    monkeypatch.setattr(cli, "stdin_is_terminal", lambda: True)
    monkeypatch.setattr("typer.confirm", lambda *args, **kwargs: None)

    status, out, _ = run("export", "p", str(tmp_path / "out"), "--format", "folders")

    assert status == 0
    assert "exported 2 images" in out


def test_export_unknown_format_lists_names_in_words(run, tmp_path: Path) -> None:
    run("project", "create", "p", "--task", "detection")

    status, _, err = run("export", "p", str(tmp_path / "out"), "--format", "labelme")

    assert status == 2
    assert "choose one of: native, folders, masks, mvtec, yolo, coco, voc" in err
    assert "[" not in err


def test_delete_unknown_project_fails_before_asking(run) -> None:
    status, out, err = run("project", "delete", "nope")

    assert status == 3
    assert "project 'nope' does not exist" in err
    assert "Delete project" not in out


def test_delete_without_terminal_keeps_project(run) -> None:
    run("project", "create", "p", "--task", "detection")

    status, _, err = run("project", "delete", "p")
    _, listed, _ = run("project", "list", "--json")

    assert status == 2
    assert "rerun with --yes" in err
    assert [row["name"] for row in json.loads(listed)] == ["p"]


def test_import_summary_counts_regions_and_stored_split(run, tmp_path: Path) -> None:
    write_voc(tmp_path / "voc")
    run("project", "create", "p", "--task", "detection")
    run("import", "p", str(tmp_path / "voc"), "--split", "test")

    status, out, _ = run("import", "p", str(tmp_path / "voc"))

    assert status == 0
    assert "0 added, 0 updated, 2 unchanged, 0 skipped" in out
    assert "per class (images): dent 1, ok 1, scratch 1" in out
    assert "regions per class: dent 2, scratch 1" in out
    assert "per split: test 2" in out
    assert "not imported" not in out


def test_import_json_keeps_its_keys(run, tmp_path: Path) -> None:
    write_voc(tmp_path / "voc")
    run("project", "create", "p", "--task", "detection")

    status, out, _ = run("import", "p", str(tmp_path / "voc"), "--json")
    report = json.loads(out)

    assert status == 0
    assert {"project", "format", "added", "updated", "unchanged", "skipped", "per_class", "per_split",
            "problems"} <= set(report)
    assert report["per_class"] == {"dent": 1, "ok": 1, "scratch": 1}
    assert report["regions_per_class"] == {"dent": 2, "scratch": 1}


def test_import_wrong_format_stores_nothing(run, tmp_path: Path) -> None:
    write_voc(tmp_path / "voc")
    run("project", "create", "p", "--task", "detection")

    status, _, err = run("import", "p", str(tmp_path / "voc"), "--format", "coco")
    _, listed, _ = run("project", "list", "--json")

    assert status == 2
    assert "no COCO JSON file" in err
    assert "--format voc" in err
    assert json.loads(listed)[0]["images"] == 0


@pytest.mark.parametrize("command", [("import",), ("export",), ("project", "delete"), ("project", "list")])
def test_help_shows_flags_without_type(run, command: tuple[str, ...]) -> None:
    _, out, _ = run(*command, "--help")

    for line in out.splitlines():
        if "--json" in line or "--yes" in line:
            assert "<bool>" not in line, line


@pytest.mark.parametrize("command", ["import", "export"])
def test_help_lists_every_format(run, command: str) -> None:
    _, out, _ = run(command, "--help")

    for name in FORMATS:
        assert name in out


def test_import_help_documents_exit_status(run) -> None:
    _, out, _ = run("import", "--help")

    assert "exit status is" in " ".join(out.split())
    assert "Name of the project" in out
