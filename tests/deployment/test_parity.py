"""Evaluation, the Python API, the ONNX bundle and the HTTP server return the same predictions, for every task."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from defectlab.data.importer import import_path
from defectlab.deployment.bundle import SCORE_TOLERANCE, export_bundle
from defectlab.deployment.server import ModelSlot, create_app
from defectlab.evaluation.runner import evaluate_model, load_stored_model
from defectlab.prediction.predictor import Predictor
from defectlab.runtime import load_bundle
from defectlab.samples import draw_part, write_class_folders
from defectlab.training.run import train_project
from defectlab.workspace import Workspace

SOURCE = Path(__file__).resolve().parents[2] / "src"


@dataclass
class Trained:
    workspace: Workspace
    model_id: int
    images: Path
    bundle: Path
    cases: dict[str, bytes]


def encoded(pixels: np.ndarray, *, mode: str | None = None, exif_orientation: int | None = None) -> bytes:
    image = Image.fromarray(pixels) if mode is None else Image.fromarray(pixels, mode)
    stream = io.BytesIO()
    if exif_orientation is None:
        image.save(stream, format="PNG")
    else:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(stream, format="PNG", exif=exif)
    return stream.getvalue()


def case_images() -> dict[str, bytes]:
    """The inputs CASES.md names for deployment: 16-bit, RGBA, EXIF-rotated, sides not multiples of 16."""
    rng = np.random.default_rng(11)
    spot, _ = draw_part(rng, size=64, defect="spot")
    good, _ = draw_part(rng, size=64)
    odd = np.asarray(Image.fromarray(spot).resize((77, 53)))
    rgba = np.dstack([np.repeat(good[..., None], 3, axis=2), np.full(good.shape, 255, np.uint8)])
    return {
        "sixteen_bit.png": encoded(good.astype(np.uint16) * 257),
        "rgba.png": encoded(rgba, mode="RGBA"),
        "exif_rotated.png": encoded(np.rot90(spot, k=1).copy(), exif_orientation=6),
        "odd_size.png": encoded(odd),
        "good.png": encoded(good),
    }


@pytest.fixture(scope="module", params=["classification", "anomaly"])
def trained(request, tmp_path_factory) -> Trained:
    root = tmp_path_factory.mktemp(request.param)
    images = write_class_folders(root / "images", good=30, per_defect=8, size=64, seed=5)
    workspace = Workspace.open(root / "workspace")
    workspace.create_project("parts", request.param)
    import_path(workspace, "parts", images)
    result = train_project(workspace, "parts", overrides={"epochs": 8} if request.param == "classification" else None)
    artifact, _ = load_stored_model(workspace, result.model_id)
    export_bundle(artifact, root / "bundle", source={"model_id": result.model_id})
    yield Trained(workspace, result.model_id, images, root / "bundle", case_images())
    workspace.close()


def test_evaluation_api_bundle_and_server_agree(trained: Trained) -> None:
    evaluation = evaluate_model(trained.workspace, trained.model_id, split="test")
    paths = [trained.images / p.path for p in evaluation.predictions]
    artifact, _ = load_stored_model(trained.workspace, trained.model_id)
    api = Predictor.from_artifact(artifact).predict_sources(paths)
    bundle = load_bundle(trained.bundle).predict_sources(paths)
    client = TestClient(create_app(ModelSlot(Predictor.load, str(trained.bundle))))
    files = [("files", (path.name, path.read_bytes(), "image/png")) for path in paths]
    served = client.post("/predict/batch", files=files).json()["predictions"]

    for expected, from_api, from_bundle, from_server in zip(evaluation.predictions, api, bundle, served):
        for other in (from_api.score, from_bundle.score, from_server["score"]):
            assert other == pytest.approx(expected.score, abs=SCORE_TOLERANCE)
        assert expected.label == from_api.label == from_bundle.label == from_server["label"]
        assert from_api.score == pytest.approx(expected.score, abs=1e-6)


def test_cases_agree_on_every_path(trained: Trained) -> None:
    artifact, _ = load_stored_model(trained.workspace, trained.model_id)
    sources = list(trained.cases.values())
    api = Predictor.from_artifact(artifact).predict_sources(sources, heatmaps=True)
    bundle = load_bundle(trained.bundle).predict_sources(sources, heatmaps=True)
    client = TestClient(create_app(ModelSlot(Predictor.load, str(trained.bundle))))
    for (name, data), from_api, from_bundle in zip(trained.cases.items(), api, bundle):
        single = client.post("/predict?heatmap=true", json={"image": base64.b64encode(data).decode(), "name": name})
        assert single.status_code == 200, single.text
        answer = single.json()
        assert answer["path"] == name
        assert from_bundle.score == pytest.approx(from_api.score, abs=SCORE_TOLERANCE), name
        assert answer["score"] == pytest.approx(from_bundle.score, abs=1e-6), name
        assert from_api.label == from_bundle.label == answer["label"], name
        if from_api.heatmap is None:
            assert answer["heatmap_png"] is None
            continue
        served_map = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["heatmap_png"]))))
        assert served_map.shape == from_api.heatmap.shape == from_bundle.heatmap.shape, name
        assert np.abs(from_bundle.heatmap - from_api.heatmap).max() <= SCORE_TOLERANCE, name


def test_exif_rotated_image_scored_upright(trained: Trained) -> None:
    """The bundle applies the EXIF orientation: a rotated file scores as the upright pixels do."""
    predictor = load_bundle(trained.bundle)
    rotated = trained.cases["exif_rotated.png"]
    upright = np.asarray(Image.open(io.BytesIO(rotated)).transpose(Image.Transpose.ROTATE_270))
    from_file, from_pixels = predictor.predict_sources([rotated, upright])
    assert from_file.score == pytest.approx(from_pixels.score, abs=1e-6)


def test_bundle_runs_without_pytorch(trained: Trained, tmp_path: Path) -> None:
    image = tmp_path / "good.png"
    image.write_bytes(trained.cases["good.png"])
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from pathlib import Path\n"
        "from defectlab.runtime import load_bundle\n"
        f"print(load_bundle(Path({str(trained.bundle)!r})).predict_sources([Path({str(image)!r})])[0].score)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(SOURCE), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    expected = load_bundle(trained.bundle).predict_sources([image])[0].score
    assert float(result.stdout) == pytest.approx(expected, abs=1e-6)
