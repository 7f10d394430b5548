"""Production capture and what to label next, end to end: serve, send images, find them, label, retrain."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from defectlab.data.importer import import_path
from defectlab.data.labels import list_images, set_image_class
from defectlab.data.suggest import suggest_images
from defectlab.deployment.bundle import export_bundle
from defectlab.deployment.capture import Capture, CaptureRule, check_metadata
from defectlab.deployment.server import ModelSlot, create_app
from defectlab.errors import ConflictError, InvalidInputError
from defectlab.evaluation.runner import load_stored_model
from defectlab.images import decode_image
from defectlab.prediction.predictor import Prediction, Predictor
from defectlab.samples import draw_part, write_class_folders
from defectlab.training.run import train_project
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Inference


def png(pixels: np.ndarray) -> bytes:
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, format="PNG")
    return stream.getvalue()


def production_images(count: int, seed: int) -> dict[str, tuple[bytes, str]]:
    """Return {name: (png bytes, true class)}: good parts and spot defects, like the training images."""
    rng = np.random.default_rng(seed)
    images = {}
    for index in range(count):
        kind = "spot" if index % 3 == 0 else None
        pixels, _ = draw_part(rng, size=64, defect=kind)
        images[f"line2_{index:03d}.png"] = (png(pixels), kind or "ok")
    return images


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("capture")
    workspace = Workspace.open(root / "workspace")
    workspace.create_project("parts", "anomaly")
    import_path(workspace, "parts", write_class_folders(root / "images", good=30, per_defect=6, size=64, seed=2))
    first = train_project(workspace, "parts")
    artifact, _ = load_stored_model(workspace, first.model_id)
    export_bundle(artifact, root / "bundle", source={"model_id": first.model_id})
    yield workspace, first, root / "bundle"
    workspace.close()


def test_serve_capture_suggest_label_retrain(served) -> None:
    workspace, first, bundle = served
    capture = Capture(workspace, "parts", CaptureRule(margin=0.2, fraction=0.3))
    client = TestClient(create_app(ModelSlot(Predictor.load, str(bundle)), capture=capture))
    sent = production_images(24, seed=9)
    answers = {}
    for name, (data, _) in sent.items():
        response = client.post("/predict", files={"file": (name, data, "image/png")},
                               data={"station": "line 2", "camera": "top", "metadata": '{"lot": "A17"}'})
        assert response.status_code == 200, response.text
        answers[name] = response.json()

    with workspace.session() as session:
        rows = session.scalars(select(Inference).order_by(Inference.id)).all()
        assert len(rows) == len(sent)
        assert rows[0].meta == {"station": "line 2", "camera": "top", "lot": "A17"}
        assert rows[0].model == str(first.model_id)
        kept = {row.name for row in rows if row.image_id is not None}

    for name, answer in answers.items():
        drawn = int(hashlib.sha256(sent[name][0]).hexdigest()[:8], 16) / 2**32 < 0.3
        if abs(answer["score"] - answer["threshold"]) <= 0.2:
            assert answer["capture"]["reason"] == "near_threshold"
        else:
            assert answer["capture"]["reason"] == ("sampled" if drawn else "not_sampled")
        assert (name in kept) == (answer["capture"]["reason"] in ("near_threshold", "sampled"))
    assert kept, "no image was kept; the rule should keep near-threshold and sampled ones"

    captured = list_images(workspace, "parts", unlabeled=True, source="production")
    assert {row["metadata"]["name"] for row in captured} == kept
    assert all(row["metadata"]["prediction"]["model"] == str(first.model_id) for row in captured)
    assert all(row["metadata"]["station"] == "line 2" for row in captured)

    suggested = suggest_images(workspace, "parts", count=len(kept))
    assert {row["image_id"] for row in suggested} == {row["id"] for row in captured}
    names = {row["id"]: row["metadata"]["name"] for row in captured}
    for row in suggested:
        set_image_class(workspace, "parts", row["image_id"], sent[names[row["image_id"]]][1], labeler="inspector")
    assert list_images(workspace, "parts", unlabeled=True) == []

    second = train_project(workspace, "parts")
    assert second.model_id != first.model_id
    _, snapshot = load_stored_model(workspace, second.model_id)
    labeled = {image.path for image in snapshot if image.label is not None}
    assert {row["path"] for row in captured} <= labeled


def test_suggest_puts_exact_copies_last(served) -> None:
    workspace, _, _ = served
    workspace.create_project("copies", "anomaly")
    root = workspace.root / "copies"
    write_class_folders(root / "labeled", good=20, per_defect=4, size=64, seed=4)
    import_path(workspace, "copies", root / "labeled")
    train_project(workspace, "copies")
    unlabeled = root / "batch 2" / "unlabeled"
    unlabeled.mkdir(parents=True)
    distinct = production_images(4, seed=21)
    for name, (data, _) in distinct.items():
        (unlabeled / name).write_bytes(data)
    copy = next(iter(distinct.values()))[0]
    for index in range(3):
        (unlabeled / f"copy_{index}.png").write_bytes(copy)
    import_path(workspace, "copies", root / "batch 2", format="folders")
    assert len(list_images(workspace, "copies", unlabeled=True)) == 7

    ranked = suggest_images(workspace, "copies", count=7)
    unique = {decode_image(workspace.blobs.get(_sha(workspace, row["image_id"]))).pixels.tobytes()
              for row in ranked[:4]}
    assert len(unique) == 4
    assert [row["diversity"] for row in ranked[4:]] == [0.0, 0.0, 0.0]


def _sha(workspace: Workspace, image_id: int) -> str:
    from defectlab.workspace.schema import Image as StoredImage

    with workspace.session() as session:
        return session.get(StoredImage, image_id).sha256


def prediction(score: float, probabilities: dict[str, float] | None = None) -> Prediction:
    return Prediction("x.png", "ok", score, score > 0.5, 0.5, probabilities)


@pytest.mark.parametrize(("score", "probabilities", "fraction", "digest", "reason"), [
    (0.60, None, 0.0, "f" * 64, "near_threshold"),
    (0.95, {"ok": 0.05, "scratch": 0.5, "spot": 0.45}, 0.0, "f" * 64, "low_confidence"),
    (0.95, None, 0.10, "00000000" + "f" * 56, "sampled"),
    (0.95, None, 0.10, "20000000" + "f" * 56, "not_sampled"),
])
def test_capture_rule_reasons(score, probabilities, fraction, digest, reason) -> None:
    assert CaptureRule(margin=0.15, fraction=fraction).reason(prediction(score, probabilities), digest) == reason


def test_capture_keeps_unusual_input() -> None:
    unusual = prediction(0.95)
    unusual.warnings = ["the image is 16-bit and the model was trained on 8-bit images"]
    assert CaptureRule(fraction=0.0).reason(unusual, "f" * 64) == "unusual_input"


def test_capture_disk_limit_and_copies(served) -> None:
    workspace, _, _ = served
    workspace.create_project("small disk", "anomaly")
    data = png(draw_part(np.random.default_rng(1), size=64)[0])
    other = png(draw_part(np.random.default_rng(2), size=64)[0])
    capture = Capture(workspace, "small disk", CaptureRule(margin=1.0, max_bytes=len(data) + 10))
    decoded = decode_image(data)
    first = capture.record("a.png", data, decoded, prediction(0.4), model="1", metadata={})
    again = capture.record("a-again.png", data, decoded, prediction(0.4), model="1", metadata={})
    full = capture.record("b.png", other, decode_image(other), prediction(0.4), model="1", metadata={})
    assert first["reason"] == "near_threshold"
    assert again == {**again, "reason": "already_stored", "image_id": first["image_id"]}
    assert full["reason"] == "disk_full"
    assert full["image_id"] is None
    assert len(list_images(workspace, "small disk")) == 1


@pytest.mark.parametrize(("value", "words"), [
    ([1, 2], "send an object"),
    ({"camera": {"nested": 1}}, "value of 'camera' is dict"),
    ({"": "x"}, "key '' is invalid"),
    ({"note": "x" * 1001}, "at most 1000"),
])
def test_metadata_errors_name_the_field(value, words) -> None:
    with pytest.raises(InvalidInputError, match=words):
        check_metadata(value, "field 'metadata'")


def test_label_based_on_old_version_rejected(served) -> None:
    workspace, _, _ = served
    row = list_images(workspace, "parts")[0]
    set_image_class(workspace, "parts", row["id"], "ok", labeler="a", version=row["version"])
    with pytest.raises(ConflictError, match="someone changed it since"):
        set_image_class(workspace, "parts", row["id"], "spot", labeler="b", version=row["version"])
    with pytest.raises(InvalidInputError, match="use one of"):
        set_image_class(workspace, "parts", row["id"], "dent", labeler="a")


def test_images_label_and_suggest_commands(served) -> None:
    import json
    import os
    import subprocess
    import sys

    workspace, _, _ = served
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "defectlab", "--workspace", str(workspace.root), *args],
                              capture_output=True, text=True, env=environment, timeout=300)

    listed = [json.loads(line) for line in run("images", "parts", "--json").stdout.splitlines()]
    assert [row["id"] for row in listed] == [row["id"] for row in list_images(workspace, "parts")]
    labeled = run("label", "parts", str(listed[1]["id"]), "spot", "--labeler", "inspector")
    assert labeled.returncode == 0, labeled.stderr
    assert "is now spot" in labeled.stdout
    rejected = run("label", "parts", str(listed[1]["id"]), "ok", "--version", str(listed[1]["version"]))
    assert rejected.returncode != 0
    assert "someone changed it since" in rejected.stderr
    suggested = run("suggest", "parts", "--count", "2", "--json")
    assert suggested.returncode == 0, suggested.stderr
    assert len(suggested.stdout.splitlines()) == min(2, len(list_images(workspace, "parts", unlabeled=True)))


def test_label_good_means_ok(served) -> None:
    workspace, _, _ = served
    row = list_images(workspace, "parts")[2]
    assert set_image_class(workspace, "parts", row["id"], "good", labeler="a")["label"] == "ok"
