"""Segmentation and detection projects through the whole loop: train, evaluate in regions, predict masks and boxes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.data.importer import import_path
from defectlab.evaluation.runner import evaluate_model, load_stored_model
from defectlab.samples import write_class_folders
from defectlab.training.outlines import OUTLINE_LEVELS
from defectlab.training.run import train_project
from defectlab.workspace import Workspace


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> Path:
    return write_class_folders(tmp_path_factory.mktemp("parts") / "images", good=10, per_defect=6, size=96)


@pytest.mark.slow
def test_segmentation_loop(parts: Path, tmp_path: Path) -> None:
    workspace = Workspace.open(tmp_path / "ws")
    workspace.create_project("plates", "segmentation")
    import_path(workspace, "plates", parts)
    result = train_project(workspace, "plates", overrides={"epochs": 3})
    assert result.class_names == ["ok", "scratch", "spot"]

    run = evaluate_model(workspace, result.model_id, split="test", report_dir=tmp_path / "report")
    pixels = run.regions["pixels"]
    assert set(pixels["iou"]) == {"ok", "scratch", "spot"}
    assert pixels["mean_defect_iou"] is not None
    # Each generated defective part has exactly one defect.
    assert sum(row["defects"] for row in run.regions["recall_by_size"].values()) == run.evaluation.defective
    artifact, _ = load_stored_model(workspace, result.model_id)
    outlines = artifact["state"]["outlines"]
    assert set(outlines) <= {"scratch", "spot"}
    assert all(level in OUTLINE_LEVELS for level in outlines.values())
    assert any("outlined" in reason for reason in result.plan.reasons)
    for prediction in run.predictions:
        assert prediction.mask.shape == (96, 96)
        assert prediction.is_defect == any(region["counts"] for region in prediction.regions)
        # The mask and the regions are drawn by the same rule.
        assert np.count_nonzero(prediction.mask) == sum(region["area"] for region in prediction.regions)
    assert json.loads(json.dumps(run.to_dict()))["regions"]["pixels"]["images"] == len(run.predictions)
    html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "<h2>Defect regions</h2>" in html
    assert f"pixel IoU, mean over defect classes: {pixels['mean_defect_iou']:.3f}" in html
    workspace.close()


@pytest.mark.slow
def test_detection_loop_with_size_rule(parts: Path, tmp_path: Path) -> None:
    from defectlab.book import update_entry

    workspace = Workspace.open(tmp_path / "ws")
    workspace.create_project("plates", "detection")
    import_path(workspace, "plates", parts)
    update_entry(workspace, "plates", "spot", author="lead", rule={"min_area": 100_000})
    result = train_project(workspace, "plates", overrides={"epochs": 3})
    # Six parts of each defect class leave fewer than ten training images with its regions.
    for name in ("scratch", "spot"):
        assert any(warning.startswith(f"Class '{name}' has regions on only") for warning in result.plan.warnings)

    run = evaluate_model(workspace, result.model_id, split="test", report_dir=tmp_path / "report")
    assert set(run.regions["per_class"]) == {"scratch", "spot"}
    assert run.regions["per_class"]["spot"]["truths"] == run.evaluation.per_class[-1].support
    for prediction in run.predictions:
        assert all(box["score"] > result.threshold for box in prediction.boxes)
        # No spot can reach 100,000 pixels on a 96 x 96 image, so spots never make an image defective.
        assert all(not box["counts"] for box in prediction.boxes if box["class"] == "spot")
        assert prediction.is_defect == any(box["counts"] for box in prediction.boxes)
    html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "AP at IoU 0.5 " in html
    workspace.close()


def test_predicted_mask_written_as_png(parts: Path, tmp_path: Path) -> None:
    from defectlab.prediction.outputs import save_mask

    mask = np.zeros((5, 7), dtype=np.uint8)
    mask[1:3, 2:4] = 2
    first = save_mask(mask, tmp_path, "lot/a.png")
    second = save_mask(mask, tmp_path, "other/a.png")
    assert first.name == "a.mask.png"
    assert second.name == "a.mask-2.png"
    assert np.array_equal(np.asarray(Image.open(first)), mask)
