"""Drift reports: production images like the training images pass, darker ones are flagged."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from defectlab.data.importer import import_path
from defectlab.deployment.capture import Capture, CaptureRule
from defectlab.deployment.drift import drift_report
from defectlab.errors import NotFoundError
from defectlab.evaluation.runner import load_stored_model
from defectlab.images import decode_image
from defectlab.images.statistics import image_statistics
from defectlab.prediction.predictor import Predictor
from defectlab.samples import draw_part, write_class_folders
from defectlab.training.run import train_project
from defectlab.workspace import Workspace


def capture_parts(workspace: Workspace, project: str, predictor: Predictor, *, seed: int, gain: float) -> None:
    capture = Capture(workspace, project, CaptureRule(margin=1.0))
    rng = np.random.default_rng(seed)
    for index in range(20):
        pixels, _ = draw_part(rng, size=64)
        pixels = np.clip(pixels.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        stream = io.BytesIO()
        Image.fromarray(pixels).save(stream, format="PNG")
        data = stream.getvalue()
        prediction = predictor.predict_sources([data])[0]
        capture.record(f"{index}.png", data, decode_image(data), prediction, model="1", metadata={})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("drift")
    workspace = Workspace.open(root / "workspace")
    images = write_class_folders(root / "images", good=30, per_defect=5, size=64, seed=8)
    for name in ("same", "darker"):
        workspace.create_project(name, "anomaly")
        import_path(workspace, name, images)
    models = {name: train_project(workspace, name).model_id for name in ("same", "darker")}
    yield workspace, models
    workspace.close()


def test_similar_production_images_pass(trained) -> None:
    workspace, models = trained
    predictor = Predictor.from_artifact(load_stored_model(workspace, models["same"])[0])
    capture_parts(workspace, "same", predictor, seed=31, gain=1.0)
    report = drift_report(workspace, "same")
    assert report["warnings"] == []
    assert report["production_images"] == 20
    assert report["embedding"]["drifted"] is False


def test_darker_production_images_flagged(trained) -> None:
    workspace, models = trained
    predictor = Predictor.from_artifact(load_stored_model(workspace, models["darker"])[0])
    capture_parts(workspace, "darker", predictor, seed=32, gain=0.4)
    report = drift_report(workspace, "darker")
    brightness = next(row for row in report["statistics"] if row["statistic"] == "brightness")
    assert brightness["drifted"] is True
    assert brightness["production_median"] == pytest.approx(0.4 * brightness["training_median"], rel=0.15)
    assert any("darker" in warning for warning in report["warnings"])
    size = next(row for row in report["statistics"] if row["statistic"] == "width")
    assert size["drifted"] is False


def test_drift_without_captures_says_how(trained) -> None:
    workspace, _ = trained
    workspace.create_project("empty", "anomaly")
    with pytest.raises(NotFoundError, match="no model yet"):
        drift_report(workspace, "empty")


def test_statistics_of_known_image() -> None:
    pixels = np.zeros((10, 20), dtype=np.uint16)
    pixels[:, 10:] = 65535
    stats = image_statistics(pixels)
    assert stats["brightness"] == pytest.approx(0.5)
    assert stats["contrast"] == pytest.approx(0.5)
    assert stats["width"] == 20
    assert stats["height"] == 10
    # Only the two columns beside the edge have a non-zero Laplacian (1 each) over 8 x 18 inner pixels.
    assert stats["sharpness"] == pytest.approx(2 * 8 / (8 * 18))
