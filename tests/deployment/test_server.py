"""The inference server's guards: API key, size limits, bad requests, concurrent requests and model swaps."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from defectlab.deployment.bundle import export_bundle
from defectlab.deployment.server import ModelSlot, ServerSettings, create_app
from defectlab.errors import ConflictError, InvalidInputError
from defectlab.images.prepare import Preprocessing
from defectlab.models.artifact import dump_artifact, new_artifact
from defectlab.prediction.predictor import Predictor
from defectlab.runtime import load_bundle
from defectlab.training.anomaly import AnomalyModel

SOURCE = Path(__file__).resolve().parents[2] / "src"


def anomaly_artifact(seed: int) -> dict:
    """An anomaly model with a random memory bank: untrained, but a real model that scores images."""
    generator = torch.Generator().manual_seed(seed)
    model = AnomalyModel(Preprocessing((64, 64), (0.0, 255.0)), torch.randn(200, 304, generator=generator))
    raw = model.predict([np.asarray(Image.open(io.BytesIO(png(100 + i)))) for i in range(8)], heatmaps=False).raw_scores
    model.threshold, model.good_median = float(np.median(raw)), float(raw.min() - raw.std())
    return new_artifact(task="anomaly", class_names=["ok", "anomaly"], threshold=0.5,
                        preprocessing=model.preprocessing.to_dict(), state=model.to_dict(), settings={})


def png(seed: int, size: tuple[int, int] = (48, 40)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, size=size, dtype=np.uint8)
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, format="PNG")
    return stream.getvalue()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    paths = {}
    for seed in (0, 1):
        paths[f"file{seed}"] = root / f"model{seed}.pt"
        paths[f"file{seed}"].write_bytes(dump_artifact(anomaly_artifact(seed)))
    paths["bundle"] = root / "bundle"
    export_bundle(anomaly_artifact(0), paths["bundle"])
    return paths


def client_for(reference: Path, settings: ServerSettings = ServerSettings()) -> TestClient:
    return TestClient(create_app(ModelSlot(Predictor.load, str(reference)), settings))


def test_health_and_model_description(models) -> None:
    client = client_for(models["bundle"])
    assert client.get("/health").json() == {"status": "ok", "model_loaded": True}
    described = client.get("/model").json()
    assert described["task"] == "anomaly"
    assert described["engine"] == "onnxruntime"
    assert described["reference"] == str(models["bundle"])
    assert "/predict" in client.get("/openapi.json").json()["paths"]


def test_api_key_required_except_for_health(models) -> None:
    client = client_for(models["file0"], ServerSettings(api_key="s3cret"))
    assert client.get("/health").status_code == 200
    rejected = client.post("/predict", files={"file": ("a.png", png(1), "image/png")})
    assert rejected.status_code == 401
    assert "X-API-Key" in rejected.json()["error"]
    wrong = client.post("/predict", files={"file": ("a.png", png(1), "image/png")}, headers={"X-API-Key": "wrong"})
    assert wrong.status_code == 401
    assert "invalid" in wrong.json()["error"]
    assert client.post("/predict", files={"file": ("a.png", png(1), "image/png")},
                       headers={"X-API-Key": "s3cret"}).status_code == 200
    assert client.get("/model", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_multipart_and_json_give_same_answer_as_predictor(models) -> None:
    client = client_for(models["file0"])
    data = png(2)
    expected = Predictor.load(models["file0"]).predict_sources([data])[0]
    by_file = client.post("/predict", files={"file": ("part.png", data, "image/png")}).json()
    by_json = client.post("/predict", json={"image": base64.b64encode(data).decode(), "name": "part.png"}).json()
    assert by_file == by_json
    assert by_file["path"] == "part.png"
    assert by_file["score"] == pytest.approx(expected.score, abs=1e-6)
    assert by_file["is_defect"] == expected.is_defect


def test_batch_reports_unreadable_image_and_predicts_the_rest(models) -> None:
    client = client_for(models["bundle"])
    files = [("files", ("a.png", png(3), "image/png")), ("files", ("broken.png", b"not an image", "image/png")),
             ("files", ("c.png", png(4), "image/png"))]
    answers = client.post("/predict/batch", files=files).json()["predictions"]
    assert [a["path"] for a in answers] == ["a.png", "broken.png", "c.png"]
    assert "broken.png" in answers[1]["error"]
    assert "score" in answers[0]
    assert "score" in answers[2]


@pytest.mark.parametrize(("request_kwargs", "status", "words"), [
    ({"content": b"raw", "headers": {"content-type": "text/plain"}}, 400, "multipart/form-data"),
    ({"json": {"name": "x"}}, 400, "'image'"),
    ({"json": {"image": "%%%"}}, 400, "not valid base64"),
    ({"json": {"image": 123}}, 400, "field 'image' is int"),
    ({"content": b"{}", "headers": {}}, 400, "no Content-Type"),
    ({"files": {"other": ("a.png", b"x", "image/png")}}, 400, "'file'"),
])
def test_bad_requests_say_what_to_send(models, request_kwargs, status, words) -> None:
    answer = client_for(models["file0"]).post("/predict", **request_kwargs)
    assert answer.status_code == status
    assert words in answer.json()["error"]


def test_errors_share_one_shape(models) -> None:
    client = client_for(models["file0"])
    two = client.post("/predict", files=[("file", ("a.png", png(1), "image/png")), ("file", ("b.png", png(2), "image/png"))])
    assert two.status_code == 400
    assert "/predict/batch" in two.json()["error"]
    assert "/nowhere" in client.get("/nowhere").json()["error"]
    bad_query = client.post("/predict?heatmap=maybe", files={"file": ("a.png", png(1), "image/png")})
    assert bad_query.status_code == 400
    assert "heatmap" in bad_query.json()["error"]
    assert client.get("/docs").status_code == 404


def test_limits_on_request_size_pixels_and_batch(models) -> None:
    client = client_for(models["file0"], ServerSettings(max_request_bytes=20_000, max_pixels=50 * 50, max_batch=2))
    large = png(5, size=(200, 200))
    assert len(large) > 20_000
    too_big = client.post("/predict", files={"file": ("big.png", large, "image/png")})
    assert too_big.status_code == 413
    assert "20000 bytes" in too_big.json()["error"]
    too_many_pixels = client.post("/predict", files={"file": ("wide.png", png(6, size=(60, 60)), "image/png")})
    assert too_many_pixels.status_code == 413
    assert "60 x 60" in too_many_pixels.json()["error"]
    files = [("files", (f"{i}.png", png(i), "image/png")) for i in range(3)]
    too_many = client.post("/predict/batch", files=files)
    assert too_many.status_code == 413
    assert "at most 2" in too_many.json()["error"]


def test_concurrent_requests_get_their_own_answers(models) -> None:
    client = client_for(models["bundle"])
    images = {f"{seed}.png": png(seed, size=(40 + seed, 64 - seed)) for seed in range(12)}
    expected = {p.path: p.score for p in load_bundle(models["bundle"]).predict(
        [np.asarray(Image.open(io.BytesIO(data))) for data in images.values()], paths=list(images))}

    def ask(name: str) -> dict:
        return client.post("/predict", files={"file": (name, images[name], "image/png")}).json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, list(images) * 3))
    assert len(answers) == 36
    for answer in answers:
        assert answer["score"] == pytest.approx(expected[answer["path"]], abs=1e-6)


def test_model_swap_keeps_serving(models) -> None:
    client = client_for(models["file0"])
    data = png(7)
    before = client.post("/predict", files={"file": ("a.png", data, "image/png")}).json()
    swapped = client.put("/model", json={"model": str(models["file1"])})
    assert swapped.status_code == 200
    assert swapped.json()["reference"] == str(models["file1"])
    after = client.post("/predict", files={"file": ("a.png", data, "image/png")}).json()
    assert after["score"] == pytest.approx(Predictor.load(models["file1"]).predict_sources([data])[0].score, abs=1e-6)
    assert after["score"] != before["score"]
    failed = client.put("/model", json={"model": str(models["file1"]) + ".missing"})
    assert failed.status_code == 404
    assert client.get("/model").json()["reference"] == str(models["file1"])


def test_bundle_refuses_existing_folder_and_altered_graph(models, tmp_path: Path) -> None:
    with pytest.raises(ConflictError, match="exists"):
        export_bundle(anomaly_artifact(0), models["bundle"])
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("manifest.json", "model.onnx"):
        (copy / name).write_bytes((models["bundle"] / name).read_bytes())
    (copy / "model.onnx").write_bytes((copy / "model.onnx").read_bytes() + b"\0")
    with pytest.raises(InvalidInputError, match="differs from the file the manifest was written for"):
        load_bundle(copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["threshold"] = "high"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidInputError, match="field 'threshold' is 'high'; expected int or float"):
        load_bundle(copy)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_command_answers_on_loopback(models) -> None:
    import httpx

    environment = {**os.environ, "PYTHONPATH": str(SOURCE)}
    rejected = subprocess.run([sys.executable, "-m", "defectlab", "serve", str(models["bundle"]), "--host", "0.0.0.0"],
                             capture_output=True, text=True, env={**environment, "DEFECTLAB_API_KEY": ""}, timeout=120)
    assert rejected.returncode != 0
    assert "API key" in rejected.stderr

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "defectlab", "serve", str(models["bundle"]), "--port", str(port)],
                              env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        answer = None
        for _ in range(120):
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/predict", files={"file": ("a.png", png(8), "image/png")})
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert answer is not None and answer.status_code == 200
        assert answer.json()["score"] == pytest.approx(
            load_bundle(models["bundle"]).predict_sources([png(8)])[0].score, abs=1e-6)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_swap_under_load_drops_nothing(models) -> None:
    client = client_for(models["file0"])
    images = {f"{seed}.png": png(seed) for seed in range(8)}
    predictors = [Predictor.load(models[key]) for key in ("file0", "file1")]
    scores = {name: [p.predict_sources([data])[0].score for p in predictors] for name, data in images.items()}

    def ask(name: str) -> tuple[str, int, float]:
        response = client.post("/predict", files={"file": (name, images[name], "image/png")})
        return name, response.status_code, response.json().get("score", -1.0)

    with ThreadPoolExecutor(max_workers=6) as pool:
        pending = [pool.submit(ask, name) for name in list(images) * 4]
        swapped = client.put("/model", json={"model": str(models["file1"])})
        results = [future.result() for future in pending]
    assert swapped.status_code == 200
    assert [status for _, status, _ in results] == [200] * len(results)
    for name, _, score in results:
        assert min(abs(score - expected) for expected in scores[name]) < 1e-5
