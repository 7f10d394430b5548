"""Prediction: the same decoding and pre-processing as training, one JSON object per image."""

from __future__ import annotations

import base64
import binascii
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from defectlab.errors import DefectlabError, InvalidInputError, NotFoundError
from defectlab.formats.records import OK_CLASS
from defectlab.images import decode_image
from defectlab.images.prepare import Preprocessing, check_input

if TYPE_CHECKING:
    from defectlab.prediction.engines import Engine

__all__ = ["ANOMALY_LABEL", "ImageSource", "Prediction", "Predictor", "iter_image_files", "to_pixels"]

logger = logging.getLogger(__name__)

ANOMALY_LABEL = "anomaly"
"""Label of an image an anomaly model calls defective; such a model cannot tell defect classes apart."""

ImageSource = Union[str, Path, bytes, np.ndarray, "PIL.Image.Image"]
"""An image as the Python API takes it; see ``to_pixels`` for the channel-order contract."""

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
_BATCH = 8


@dataclass
class Prediction:
    """A model's prediction for one image; ``heatmap`` and ``mask`` are not part of the JSON.

    ``regions`` are a segmentation model's regions and ``boxes`` a detection
    model's boxes, each with ``counts``: whether it passes its class's decision rule.
    """

    path: str
    label: str
    score: float
    is_defect: bool
    threshold: float
    probabilities: dict[str, float] | None = None
    heatmap: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    regions: list[dict[str, Any]] | None = None
    boxes: list[dict[str, Any]] | None = None
    mask: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "path": self.path,
            "label": self.label,
            "score": round(float(self.score), 6),
            "is_defect": bool(self.is_defect),
            "threshold": float(self.threshold),
        }
        if self.probabilities is not None:
            result["probabilities"] = {name: round(p, 6) for name, p in self.probabilities.items()}
        if self.regions is not None:
            result["regions"] = [dict(region) for region in self.regions]
        if self.boxes is not None:
            result["boxes"] = [dict(box) for box in self.boxes]
        if self.warnings:
            result["warnings"] = list(self.warnings)
        return result


class Predictor:
    """Scores images with a trained model exactly as evaluation does.

    An image is defective when its score is above the model's threshold.
    """

    def __init__(self, engine: Engine, *, task: str, class_names: Sequence[str], threshold: float,
                 description: dict[str, Any] | None = None, preprocessing: Preprocessing | None = None) -> None:
        self.preprocessing = preprocessing
        self.task = task
        self.class_names = list(class_names)
        self.threshold = float(threshold)
        self.description = dict(description or {})
        self._engine = engine
        logger.info("loaded %s model (threshold %.4f, classes %s)", self.task, self.threshold, self.class_names)

    @classmethod
    def from_artifact(cls, artifact: dict[str, Any]) -> Predictor:
        """Build a predictor that runs a model artifact with PyTorch."""
        from defectlab.prediction.engines import build_engine

        description = {key: artifact.get(key) for key in ("project", "snapshot_id", "created_at", "defectlab_version")}
        return cls(build_engine(artifact), task=artifact["task"], class_names=artifact["class_names"],
                   threshold=artifact["threshold"], description={**description, "engine": "pytorch"},
                   preprocessing=Preprocessing.from_dict(artifact["preprocessing"]))

    @classmethod
    def load(cls, path: Path) -> Predictor:
        """Load a model file from 'export-model', or a bundle folder from 'export-model --format onnx'.

        Raises:
            InvalidInputError: The path is neither.
            NotFoundError: The path does not exist.
        """
        path = Path(path)
        if path.is_dir():
            from defectlab.runtime import load_bundle

            return load_bundle(path)
        from defectlab.models.artifact import load_artifact

        return cls.from_artifact(load_artifact(path))

    def predict(self, images: Sequence[np.ndarray], *, paths: Sequence[str] | None = None,
                heatmaps: bool = False) -> list[Prediction]:
        """Predict decoded pixels, ``(H, W)`` or ``(H, W, 3)`` as ``decode_image`` returns them."""
        if paths is not None and len(paths) != len(images):
            raise InvalidInputError(f"got {len(images)} images but {len(paths)} paths; give one path per image")
        names = list(paths) if paths is not None else [f"<image {i}>" for i in range(len(images))]
        results = []
        for start in range(0, len(images), _BATCH):
            batch = images[start:start + _BATCH]
            output = self._engine.score(batch, heatmaps=heatmaps)
            for offset in range(len(batch)):
                result = self._assemble(names[start + offset], output, offset)
                if self.preprocessing is not None:
                    result.warnings = check_input(batch[offset], self.preprocessing)
                results.append(result)
        return results

    def predict_sources(self, sources: Sequence[ImageSource], *, heatmaps: bool = False) -> list[Prediction]:
        """Predict images given as paths, encoded bytes, base64 text, PIL images or arrays (see ``to_pixels``)."""
        names = [str(source) if isinstance(source, (str, Path)) and _is_path(source) else f"<image {index}>"
                 for index, source in enumerate(sources)]
        return self.predict([to_pixels(source) for source in sources], paths=names, heatmaps=heatmaps)

    def predict_files(self, paths: Sequence[Path], *, heatmaps: bool = False) -> Iterator[Prediction | DefectlabError]:
        """Yield a prediction per image file, or the error that kept a file from being read."""
        pending: list[tuple[str, np.ndarray]] = []
        for path in iter_image_files(paths):
            try:
                pending.append((str(path), decode_image(path.read_bytes(), source=str(path)).pixels))
            except DefectlabError as error:
                yield error
                continue
            except OSError as error:
                yield InvalidInputError(f"{path}: the file could not be read ({error})")
                continue
            if len(pending) == _BATCH:
                yield from self._predict_pending(pending, heatmaps)
                pending = []
        yield from self._predict_pending(pending, heatmaps)

    def _predict_pending(self, pending: list[tuple[str, np.ndarray]], heatmaps: bool) -> list[Prediction]:
        if not pending:
            return []
        return self.predict([pixels for _, pixels in pending], paths=[name for name, _ in pending], heatmaps=heatmaps)

    def _assemble(self, path: str, output, offset: int) -> Prediction:
        score = float(output.scores[offset])
        is_defect = score > self.threshold
        probabilities = None
        if output.probabilities is not None:
            row = output.probabilities[offset]
            probabilities = {name: float(p) for name, p in zip(self.class_names, row)}
        heatmap = output.heatmaps[offset] if output.heatmaps is not None else None
        if output.regions is not None:
            found = output.regions[offset]
            counting = [region for region in found if region["counts"]]
            label = counting[0]["class"] if is_defect and counting else OK_CLASS
            named = {"boxes": found} if self.task == "detection" else {"regions": found}
            mask = output.masks[offset] if output.masks is not None else None
            return Prediction(path, label, score, is_defect, self.threshold, heatmap=heatmap, mask=mask, **named)
        label = self._label(is_defect, probabilities)
        return Prediction(path, label, score, is_defect, self.threshold, probabilities, heatmap)

    def _label(self, is_defect: bool, probabilities: dict[str, float] | None) -> str:
        if not is_defect:
            return OK_CLASS
        if probabilities is None:
            return ANOMALY_LABEL
        defect_classes = {name: p for name, p in probabilities.items() if name != OK_CLASS}
        return max(defect_classes, key=defect_classes.get) if defect_classes else ANOMALY_LABEL


def iter_image_files(paths: Sequence[Path]) -> Iterator[Path]:
    """Yield the given files and the image files under the given folders, in sorted order.

    Raises:
        NotFoundError: A path does not exist.
        InvalidInputError: A folder contains no image files.
    """
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InvalidInputError(f"folder {path} contains no image files ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                                        "give a folder of images")
            yield from found
        elif path.is_file():
            yield path
        else:
            raise NotFoundError(f"{path} does not exist; give image files or folders of images")


def to_pixels(source: ImageSource) -> np.ndarray:
    """Turn any supported image form into pixels exactly as import and training decode them.

    Channel order is RGB everywhere: an array must be ``(H, W)`` grayscale or
    ``(H, W, 3)`` in red, green, blue order (OpenCV's BGR arrays must be
    reversed with ``array[..., ::-1]`` first), ``uint8`` or ``uint16``. Files,
    bytes, base64 text and PIL images go through ``decode_image``, so EXIF
    orientation and transparency are handled as at import.

    Raises:
        InvalidInputError: The source is of an unsupported type or shape, or
            the text is neither an existing path nor base64.
        ImageDecodeError: The encoded image cannot be decoded.
    """
    if isinstance(source, np.ndarray):
        return _checked_array(source)
    if isinstance(source, bytes):
        return decode_image(source).pixels
    if isinstance(source, (str, Path)):
        return _pixels_from_text(source)
    if hasattr(source, "save") and hasattr(source, "mode"):
        stream = io.BytesIO()
        source.save(stream, format="PNG" if source.mode != "I;16" else "TIFF")
        return decode_image(stream.getvalue(), source="<PIL image>").pixels
    raise InvalidInputError(
        f"an image of type {type(source).__name__} cannot be predicted; pass a path, bytes, base64 text, "
        "a PIL image or a NumPy array"
    )


def _is_path(source: str | Path) -> bool:
    try:
        return Path(source).is_file()
    except (OSError, ValueError):
        return False


def _pixels_from_text(source: str | Path) -> np.ndarray:
    if _is_path(source):
        return decode_image(Path(source).read_bytes(), source=str(source)).pixels
    try:
        data = base64.b64decode(str(source), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(
            f"{str(source)[:80]!r} is neither an existing file nor base64 text; pass a path to an image file "
            "or the file's bytes encoded as base64"
        ) from None
    return decode_image(data, source="<base64 image>").pixels


def _checked_array(array: np.ndarray) -> np.ndarray:
    if array.dtype not in (np.uint8, np.uint16):
        raise InvalidInputError(f"an image array of dtype {array.dtype} is invalid; use uint8 or uint16")
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3):
        return np.ascontiguousarray(array)
    raise InvalidInputError(
        f"an image array of shape {array.shape} is invalid; use (H, W) grayscale or (H, W, 3) RGB, "
        "with any alpha channel removed"
    )
