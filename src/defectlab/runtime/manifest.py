"""The bundle's manifest: everything besides the ONNX graph that prediction needs, as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defectlab.errors import InvalidInputError
from defectlab.images.prepare import Preprocessing

__all__ = ["BUNDLE_FORMAT", "BUNDLE_VERSION", "GRAPH_FILE", "MANIFEST_FILE", "Manifest", "read_manifest"]

BUNDLE_FORMAT = "defectlab-bundle"
BUNDLE_VERSION = 1
GRAPH_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
OUTPUTS = ("probabilities", "patch_distances")

DECISION = {
    "defective": "score > threshold",
    "score": "classification: 1 - probability of 'ok'; anomaly: normalize_anomaly(max patch distance)",
    "label": "'ok' when not defective; else the most probable defect class, or 'anomaly' for an anomaly model",
}
"""Rules that turn scores into predictions, written into each manifest for people reading it."""

TILING = {"mode": "none", "note": "each image is resized whole to the input size"}
"""Tiling rule for large images: models of this version resize each image whole."""


@dataclass(frozen=True)
class Manifest:
    """Input settings and decision rules of a bundle's graph.

    Attributes:
        task: ``classification`` or ``anomaly``.
        class_names: Class names in the order of the graph's probabilities.
        threshold: Score above which an image is defective.
        preprocessing: How pixels become the graph's input.
        output: ``probabilities`` or ``patch_distances``.
        raw_threshold: Anomaly only: patch distance that maps to a score of 0.5.
        good_median: Anomaly only: median raw score of held-out good images.
        graph_sha256: SHA-256 of the ONNX file, checked on load.
        source: Where the model came from (model id, project, creation time, versions).
    """

    task: str
    class_names: list[str]
    threshold: float
    preprocessing: Preprocessing
    output: str
    graph_sha256: str
    raw_threshold: float | None = None
    good_median: float | None = None
    source: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest as JSON-ready values."""
        return {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "task": self.task,
            "class_names": list(self.class_names),
            "threshold": self.threshold,
            "preprocessing": self.preprocessing.to_dict(),
            "output": self.output,
            "raw_threshold": self.raw_threshold,
            "good_median": self.good_median,
            "graph": {"file": GRAPH_FILE, "sha256": self.graph_sha256, "input": "images", "layout": "1 x 3 x height x width, float32"},
            "tiling": TILING,
            "decision": DECISION,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Any, *, name: str) -> Manifest:
        """Read a manifest written by ``to_dict``, naming the first missing or invalid field.

        Raises:
            InvalidInputError: A field is missing or invalid, or a newer defectlab wrote it.
        """
        if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
            raise InvalidInputError(f"{name} is not a defectlab bundle manifest; export one with "
                                    "'defectlab export-model MODEL --format onnx OUT'")
        if not isinstance(data.get("version"), int) or data["version"] > BUNDLE_VERSION:
            raise InvalidInputError(f"{name}: field 'version' is {data.get('version')!r}; this defectlab reads "
                                    f"bundles up to version {BUNDLE_VERSION}; upgrade defectlab")
        task = _field(data, "task", str, name)
        output = _field(data, "output", str, name)
        if output not in OUTPUTS:
            raise InvalidInputError(f"{name}: field 'output' is {output!r}; expected one of {', '.join(OUTPUTS)}")
        anomaly = output == "patch_distances"
        return cls(
            task=task,
            class_names=[str(v) for v in _field(data, "class_names", list, name)],
            threshold=float(_field(data, "threshold", (int, float), name)),
            preprocessing=Preprocessing.from_dict(_field(data, "preprocessing", dict, name)),
            output=output,
            graph_sha256=str(_field(_field(data, "graph", dict, name), "sha256", str, f"{name}: field 'graph'")),
            raw_threshold=float(_field(data, "raw_threshold", (int, float), name)) if anomaly else None,
            good_median=float(_field(data, "good_median", (int, float), name)) if anomaly else None,
            source=dict(data.get("source") or {}),
        )


def read_manifest(folder: Path) -> Manifest:
    """Read ``manifest.json`` from a bundle folder.

    Raises:
        InvalidInputError: The folder has no manifest, or it is not valid JSON or not a manifest.
    """
    path = folder / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"{folder} is not a defectlab bundle: {MANIFEST_FILE} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInputError(f"{path} cannot be read as JSON ({error}); export the bundle again") from error
    return Manifest.from_dict(data, name=str(path))


def _field(data: dict[str, Any], key: str, kind: type | tuple[type, ...], name: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidInputError(f"{name}: field {key!r} is {value!r}; expected {expected}")
    return value
