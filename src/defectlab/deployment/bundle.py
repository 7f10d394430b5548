"""Export a model artifact as a bundle: an ONNX graph plus a JSON manifest (see ``defectlab.runtime``).

The export checks itself before anything is written: it scores a few generated
images with PyTorch and with ONNX Runtime and refuses to write a bundle whose
scores differ by more than ``SCORE_TOLERANCE`` or whose labels differ.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from defectlab.deployment.graphs import build_graph
from defectlab.errors import ConflictError, InvalidInputError
from defectlab.prediction.engines import build_engine
from defectlab.prediction.predictor import Predictor
from defectlab.runtime import load_bundle
from defectlab.runtime.manifest import GRAPH_FILE, MANIFEST_FILE, Manifest
from defectlab.training.anomaly import AnomalyModel

__all__ = ["SCORE_TOLERANCE", "export_bundle"]

SCORE_TOLERANCE = 1e-3
"""Largest difference in score between PyTorch and the bundle that export and the parity tests accept."""

_OPSET = 17
_CHECK_IMAGES = 4


def export_bundle(artifact: dict[str, Any], out: Path, *, source: dict[str, Any] | None = None) -> Manifest:
    """Write ``out/model.onnx`` and ``out/manifest.json`` for a model artifact.

    Args:
        artifact: A loaded model artifact (``load_artifact``).
        out: Folder to create; it must not exist yet.
        source: Extra provenance for the manifest, such as the model id.

    Raises:
        ConflictError: ``out`` exists.
        InvalidInputError: The model's task cannot be exported, or the bundle's
            scores would differ from PyTorch's (nothing is written then).
    """
    out = Path(out)
    if out.exists():
        raise ConflictError(f"{out} exists; choose a new folder for the bundle or remove the old one")
    if artifact["task"] not in ("classification", "anomaly"):
        raise InvalidInputError(f"models of task {artifact['task']!r} cannot be exported in this version of defectlab")
    model = build_engine(artifact).model
    graph, output = _trace(model)
    manifest = _manifest(artifact, model, graph, output, source or {})

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=".bundle-"))
    try:
        (staging / GRAPH_FILE).write_bytes(graph)
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")
        _check_parity(Predictor.from_artifact(artifact), load_bundle(staging))
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _trace(model: Any) -> tuple[bytes, str]:
    """Trace the model's network to ONNX bytes for one image at a time; return them and the output's name.

    The batch size is fixed at 1 because every shape inside is then a constant,
    which the adaptive pooling of the patch classifier needs.
    """
    module, output = build_graph(model)
    height, width = model.preprocessing.input_size
    example = torch.zeros(1, 3, height, width)
    stream = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), stream, dynamo=False, opset_version=_OPSET, input_names=["images"],
                          output_names=[output])
    return stream.getvalue(), output


def _manifest(artifact: dict[str, Any], model: Any, graph: bytes, output: str, source: dict[str, Any]) -> Manifest:
    from defectlab import __version__

    anomaly = isinstance(model, AnomalyModel)
    provenance = {key: artifact.get(key) for key in ("project", "snapshot_id", "created_at", "defectlab_version")}
    provenance.update(source, exported_by=f"defectlab {__version__}", onnx_opset=_OPSET)
    return Manifest(
        task=artifact["task"],
        class_names=list(artifact["class_names"]),
        threshold=float(artifact["threshold"]),
        preprocessing=model.preprocessing,
        output=output,
        graph_sha256=hashlib.sha256(graph).hexdigest(),
        raw_threshold=model.threshold if anomaly else None,
        good_median=model.good_median if anomaly else None,
        source=provenance,
    )


def _check_parity(reference: Predictor, bundle: Predictor) -> None:
    """Raise InvalidInputError when the bundle scores generated images differently from PyTorch."""
    images = _check_images()
    for expected, got in zip(reference.predict(images), bundle.predict(images)):
        near_threshold = abs(expected.score - expected.threshold) <= SCORE_TOLERANCE
        if abs(expected.score - got.score) > SCORE_TOLERANCE or (got.label != expected.label and not near_threshold):
            raise InvalidInputError(
                f"the ONNX graph scores a check image {got.score:.6f} ({got.label}) where PyTorch scores "
                f"{expected.score:.6f} ({expected.label}); the bundle was not written. Report this with the model file"
            )


def _check_images() -> list[np.ndarray]:
    """Return a few generated grayscale images: smooth, noisy and with a bright spot, at odd sizes."""
    rng = np.random.default_rng(0)
    images = []
    for index in range(_CHECK_IMAGES):
        height, width = 97 + 31 * index, 131 - 17 * index
        ramp = np.linspace(40, 200, width)[None, :] + rng.normal(0, 12 * index, (height, width))
        if index % 2:
            ramp[height // 3: height // 3 + 9, width // 2: width // 2 + 9] = 255
        images.append(np.clip(ramp, 0, 255).astype(np.uint8))
    return images
