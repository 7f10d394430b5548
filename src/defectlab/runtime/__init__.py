"""Prediction with an exported bundle: ONNX Runtime, NumPy and Pillow; no PyTorch, no workspace.

    from defectlab.runtime import load_bundle

    predictor = load_bundle(Path("bundle"))
    for prediction in predictor.predict_sources(["part.png"]):
        print(prediction.to_dict())

A bundle is a folder written by ``defectlab export-model MODEL --format onnx OUT``:
``model.onnx`` (the network, from normalized input to probabilities or patch
distances) and ``manifest.json`` (pre-processing, class names, threshold and
decision rules). Decoding, pre-processing and the decision rules are the same
code that training and evaluation run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from defectlab.runtime.manifest import Manifest, read_manifest

if TYPE_CHECKING:
    from defectlab.prediction.predictor import Predictor

__all__ = ["Manifest", "load_bundle", "read_manifest"]


def load_bundle(folder: Path, *, threads: int | None = None) -> Predictor:
    """Load a bundle folder as a ``Predictor`` that runs on ONNX Runtime.

    Raises:
        InvalidInputError: The folder is not a complete, unaltered bundle.
    """
    from defectlab.prediction.predictor import Predictor
    from defectlab.runtime.engine import OnnxEngine

    folder = Path(folder)
    manifest = read_manifest(folder)
    engine = OnnxEngine(folder, manifest, threads=threads)
    description = {**manifest.source, "engine": "onnxruntime", "bundle": str(folder)}
    return Predictor(engine, task=manifest.task, class_names=manifest.class_names, threshold=manifest.threshold,
                     description=description, preprocessing=manifest.preprocessing)
