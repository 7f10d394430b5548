"""The command line as scripts use it: exit codes, stderr, JSON output and the whole loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.samples import write_class_folders

SOURCE = Path(__file__).resolve().parents[1] / "src"


def run(workspace: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": f"{SOURCE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-m", "defectlab", "--workspace", str(workspace), *args],
        capture_output=True, text=True, env=environment, timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"defectlab {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def test_unknown_project_exits_3_on_stderr(tmp_path: Path) -> None:
    result = run(tmp_path / "ws", "import", "nope", str(tmp_path), check=False)
    assert result.returncode == 3
    assert "project 'nope' does not exist" in result.stderr
    assert result.stdout == ""


def test_invalid_task_exits_2(tmp_path: Path) -> None:
    result = run(tmp_path / "ws", "project", "create", "p", "--task", "regression", check=False)
    assert result.returncode == 2
    assert "classification, anomaly, segmentation, detection" in result.stderr


def test_setting_outside_range_rejected(tmp_path: Path) -> None:
    write_class_folders(tmp_path / "images", good=6, per_defect=2, size=64)
    run(tmp_path / "ws", "project", "create", "p", "--task", "classification")
    run(tmp_path / "ws", "import", "p", str(tmp_path / "images"))
    result = run(tmp_path / "ws", "train", "p", "--set", "epochs=100000", check=False)
    assert result.returncode == 2
    assert "epochs" in result.stderr


def test_segmentation_without_regions_exits_5(tmp_path: Path) -> None:
    write_class_folders(tmp_path / "images", good=6, per_defect=0, size=64)
    run(tmp_path / "ws", "project", "create", "seg", "--task", "segmentation")
    run(tmp_path / "ws", "import", "seg", str(tmp_path / "images"))
    result = run(tmp_path / "ws", "train", "seg", check=False)
    assert result.returncode == 5
    assert "no training image with a labeled defect region" in result.stderr


@pytest.mark.slow
def test_anomaly_loop_scores_agree_on_every_path(tmp_path: Path) -> None:
    images = write_class_folders(tmp_path / "images", good=30, per_defect=5, size=64, seed=3)
    workspace = tmp_path / "ws"
    run(workspace, "project", "create", "parts", "--task", "anomaly")
    imported = json.loads(run(workspace, "import", "parts", str(images), "--json").stdout)
    assert imported["added"] == 40
    assert imported["per_class"] == {"ok": 30, "scratch": 5, "spot": 5}

    trained = json.loads(run(workspace, "train", "parts", "--json").stdout)
    model_id = trained["model_id"]
    evaluated = json.loads(run(workspace, "evaluate", str(model_id), "--json").stdout)
    assert evaluated["threshold"] == trained["threshold"]
    assert Path(evaluated["report"]).is_file()
    assert evaluated["auroc"] is not None

    from defectlab.evaluation.runner import evaluate_model
    from defectlab.workspace import Workspace

    run_api = evaluate_model(Workspace.open(workspace), model_id, split="test")
    api_scores = {p.path: p.score for p in run_api.predictions}
    files = [images / path for path in api_scores]
    lines = run(workspace, "predict", str(model_id), *map(str, files), "--json").stdout.splitlines()
    cli = {str(Path(row["path"]).relative_to(images)): row for row in map(json.loads, lines)}
    assert set(cli) == set(api_scores)
    for path, score in api_scores.items():
        assert cli[path]["score"] == pytest.approx(score, abs=1e-5)
        assert cli[path]["is_defect"] == (score > trained["threshold"])
        assert {"path", "label", "score", "is_defect", "threshold"} <= set(cli[path])

    exported = tmp_path / "model.pt"
    run(workspace, "export-model", str(model_id), str(exported))
    from_file = json.loads(run(tmp_path / "other", "predict", str(exported), str(files[0]), "--json").stdout)
    assert from_file["score"] == pytest.approx(cli[str(files[0].relative_to(images))]["score"], abs=1e-5)

    bundle = tmp_path / "bundle"
    run(workspace, "export-model", str(model_id), str(bundle), "--format", "onnx")
    from_bundle = json.loads(run(tmp_path / "other", "predict", str(bundle), str(files[0]), "--json").stdout)
    assert from_bundle["score"] == pytest.approx(from_file["score"], abs=1e-3)
    assert from_bundle["label"] == from_file["label"]
    again = run(workspace, "export-model", str(model_id), str(bundle), "--format", "onnx", check=False)
    assert again.returncode != 0
    assert "exists" in again.stderr


def test_predict_reports_unreadable_file_and_goes_on(tmp_path: Path) -> None:
    write_class_folders(tmp_path / "images", good=12, per_defect=0, size=48)
    run(tmp_path / "ws", "project", "create", "parts", "--task", "anomaly")
    run(tmp_path / "ws", "import", "parts", str(tmp_path / "images"))
    model_id = json.loads(run(tmp_path / "ws", "train", "parts", "--json").stdout)["model_id"]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    good = tmp_path / "images" / "good" / "000.png"
    result = run(tmp_path / "ws", "predict", str(model_id), str(broken), str(good), "--json",
                 "--heatmaps", str(tmp_path / "heatmaps"), "--masks", str(tmp_path / "masks"), check=False)
    assert result.returncode == 2
    assert "broken.png" in result.stderr
    assert json.loads(result.stdout.strip())["path"] == str(good)
    # An anomaly model gives heatmaps but no masks, and prints a warning about the masks.
    assert len(list((tmp_path / "heatmaps").glob("*.png"))) == 1
    assert "no heatmaps were written" not in result.stderr
    assert "warning: no masks were written because this model gives none" in result.stderr
    assert not (tmp_path / "masks").exists()


@pytest.mark.parametrize("command", ["evaluate", "export-model"])
def test_project_name_for_model_id_exits_2(tmp_path: Path, command: str) -> None:
    args = [command, "parts"] + ([str(tmp_path / "model.pt")] if command == "export-model" else [])
    result = run(tmp_path / "ws", *args, check=False)
    assert result.returncode == 2
    assert "'parts' is not a model id" in result.stderr
    assert "defectlab models parts" in result.stderr


def test_export_round_trip_keeps_counts(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    for line in ("lineA", "lineB"):
        (folder / "ok" / line).mkdir(parents=True)
        Image.fromarray(np.full((16, 16), 10 if line == "lineA" else 20, np.uint8)).save(folder / "ok" / line / "0001.png")
    (folder / "dent").mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / "dent" / "0001.png")
    run(tmp_path / "ws", "project", "create", "p", "--task", "classification")
    run(tmp_path / "ws", "import", "p", str(folder))
    run(tmp_path / "ws", "export", "p", str(tmp_path / "out"), "--format", "native")
    run(tmp_path / "ws", "project", "create", "q", "--task", "classification")
    again = json.loads(run(tmp_path / "ws", "import", "q", str(tmp_path / "out"), "--json").stdout)
    assert again["format"] == "native"
    assert again["added"] == 3
    assert again["per_class"] == {"dent": 1, "ok": 2}


def _exposed_parts(folder: Path, rng: np.random.Generator) -> Path:
    """Write good parts at five exposures and a few with a dark spot, as class folders."""
    for label, count in (("ok", 25), ("spot", 6)):
        (folder / label).mkdir(parents=True)
        for index in range(count):
            scene = 110.0 + 20.0 * np.sin(np.arange(64)[:, None] / 4.0) + rng.normal(0, 5, size=(64, 64))
            if label == "spot":
                scene[20:30, 25:35] = 30.0
            gain = (0.5, 0.75, 1.0, 1.4, 2.0)[index % 5]
            Image.fromarray(np.clip(scene * gain, 0, 255).astype(np.uint8)).save(folder / label / f"{index:02d}.png")
    return folder


def test_varied_exposure_is_stretched_and_said(tmp_path: Path) -> None:
    images = _exposed_parts(tmp_path / "images", np.random.default_rng(8))
    workspace = tmp_path / "ws"
    run(workspace, "project", "create", "parts", "--task", "anomaly")
    run(workspace, "import", "parts", str(images))

    printed = run(workspace, "train", "parts").stdout
    stretched = "intensity range (1st to 99th percentile) is stretched"
    assert printed.count(stretched) == 1
    assert printed.index("Settings chosen from the data:") < printed.index("Chosen while training:")
    assert printed.index("Chosen while training:") < printed.index(stretched)
    # The first input size is printed as a starting point, and the chosen one after training.
    assert printed.index("The input size above is a starting point") < printed.index("Chosen while training:")
    assert printed.index("Chosen while training:") < printed.index("is the size this model uses")

    from defectlab.evaluation.runner import evaluate_model, load_stored_model
    from defectlab.workspace import Workspace

    stored = Workspace.open(workspace)
    model_id = json.loads(run(workspace, "models", "parts", "--json").stdout)[0]["id"]
    assert load_stored_model(stored, model_id)[0]["preprocessing"]["stretch"] is True
    scores = {p.path: p.score for p in evaluate_model(stored, model_id, split="test").predictions}
    bundle = tmp_path / "bundle"
    run(workspace, "export-model", str(model_id), str(bundle), "--format", "onnx")
    lines = run(tmp_path / "other", "predict", str(bundle), *(str(images / path) for path in scores), "--json")
    for row in map(json.loads, lines.stdout.splitlines()):
        assert row["score"] == pytest.approx(scores[str(Path(row["path"]).relative_to(images))], abs=1e-3)
