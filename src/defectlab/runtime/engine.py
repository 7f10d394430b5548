"""Score images with an exported bundle through ONNX Runtime alone (no PyTorch)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defectlab.errors import InvalidInputError
from defectlab.formats.records import OK_CLASS
from defectlab.images.prepare import to_arrays
from defectlab.runtime.manifest import GRAPH_FILE, Manifest
from defectlab.runtime.scores import normalize_anomaly, upsample

__all__ = ["EngineOutput", "OnnxEngine", "defect_scores"]


@dataclass
class EngineOutput:
    """Scores of a batch of images.

    Attributes:
        scores: float ``(N,)`` defect scores in 0..1; higher is more likely defective.
        probabilities: float ``(N, C)`` per-class probabilities (classification only).
        heatmaps: float ``(H, W)`` per image in 0..1, each the size of its image (anomaly and segmentation).
        regions: Per image, its regions (segmentation) or boxes (detection) above the threshold.
        masks: ``uint8`` ``(H, W)`` class index per pixel per image, 0 where no defect (segmentation).
    """

    scores: np.ndarray
    probabilities: np.ndarray | None = None
    heatmaps: list[np.ndarray] | None = None
    regions: list[list[dict]] | None = None
    masks: list[np.ndarray] | None = None


def defect_scores(probabilities: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """Return ``1 - p(ok)`` per row of ``probabilities`` ``(N, C)``; 1 when there is no ok class."""
    if OK_CLASS not in class_names:
        return np.ones(len(probabilities))
    return 1.0 - np.asarray(probabilities, dtype=np.float64)[:, list(class_names).index(OK_CLASS)]


class OnnxEngine:
    """Run a bundle's graph and turn its output into scores, as the PyTorch engines do.

    Args:
        folder: The bundle folder.
        manifest: Its manifest.
        threads: Threads for one inference; None lets ONNX Runtime use every core.

    Raises:
        InvalidInputError: The graph is missing, altered since export, or not a valid ONNX file.
    """

    def __init__(self, folder: Path, manifest: Manifest, *, threads: int | None = None) -> None:
        import onnxruntime

        path = folder / GRAPH_FILE
        try:
            graph = path.read_bytes()
        except FileNotFoundError:
            raise InvalidInputError(f"{folder} is not a complete bundle: {GRAPH_FILE} is missing; export it again") from None
        if hashlib.sha256(graph).hexdigest() != manifest.graph_sha256:
            raise InvalidInputError(f"{path} differs from the file the manifest was written for; export the bundle again")
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - ONNX Runtime raises its own exception types
            raise InvalidInputError(f"{path} cannot be loaded by ONNX Runtime ({error})") from error
        self.manifest = manifest
        self.input_name = self.session.get_inputs()[0].name

    def score(self, images: Sequence[np.ndarray], *, heatmaps: bool) -> EngineOutput:
        """Score decoded pixels ``(H, W)`` or ``(H, W, 3)``, uint8 or uint16."""
        batch = to_arrays(images, self.manifest.preprocessing)
        rows = [self.session.run(None, {self.input_name: batch[i:i + 1]})[0] for i in range(len(batch))]
        output = np.concatenate(rows) if rows else None
        if self.manifest.output == "probabilities":
            probabilities = output.astype(np.float64) if output is not None else np.zeros((0, len(self.manifest.class_names)))
            return EngineOutput(scores=defect_scores(probabilities, self.manifest.class_names), probabilities=probabilities)
        return self._anomaly(output, images, heatmaps)

    def _anomaly(self, maps: np.ndarray | None, images: Sequence[np.ndarray], heatmaps: bool) -> EngineOutput:
        if maps is None:
            return EngineOutput(scores=np.zeros(0), heatmaps=[] if heatmaps else None)
        manifest = self.manifest
        raw = maps.reshape(len(maps), -1).max(axis=1)
        scores = normalize_anomaly(raw, manifest.raw_threshold, manifest.good_median).astype(np.float64)
        planes = None
        if heatmaps:
            planes = [normalize_anomaly(upsample(patch_map, pixels.shape[:2]), manifest.raw_threshold, manifest.good_median)
                      for patch_map, pixels in zip(maps, images)]
        return EngineOutput(scores=scores, heatmaps=planes)
