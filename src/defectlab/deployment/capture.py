"""Production capture: the server records each prediction in a project and keeps the images worth labeling.

Every prediction becomes an ``Inference`` row with the caller's metadata
(station, camera, time, any other key and value). The image itself is kept, as an
unlabeled image of the project carrying the model's prediction in its metadata,
when one of these holds, checked in this order:

1. ``near_threshold``: its score is within ``margin`` of the threshold.
2. ``low_confidence``: for a classifier, its most probable class has a
   probability below ``confidence``.
3. ``unusual_input``: the prediction carries a warning that the image is unlike
   the training images (another bit depth, or pixels outside their range).
4. ``sampled``: it falls in the ``fraction`` of the remaining images drawn by
   their SHA-256, so the same image is always drawn or always passed over.

Otherwise the reason is ``not_sampled``. Images stop being kept once the kept
images of the project take ``max_bytes`` (reason ``disk_full``); predictions are
still recorded then. An image already in the project is linked, not stored twice.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import func, select

from defectlab.errors import InvalidInputError
from defectlab.images.decode import DecodedImage
from defectlab.images.statistics import image_statistics
from defectlab.prediction.predictor import Prediction
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Image, Inference

__all__ = ["Capture", "CaptureRule", "check_metadata"]

logger = logging.getLogger(__name__)

PRODUCTION_FOLDER = "production"
"""Captured images get paths ``production/YYYY-MM-DD/<digest><suffix>`` in the project."""

KEPT_REASONS = ("near_threshold", "low_confidence", "unusual_input", "sampled")
"""Reasons under which the image itself was stored."""

_MAX_KEYS = 50
_MAX_TEXT = 1000


@dataclass(frozen=True)
class CaptureRule:
    """Rule for the images the server keeps; see the module docstring.

    Attributes:
        margin: Score distance from the threshold within which an image is always kept.
        confidence: Top-class probability below which a classifier's image is always kept.
        fraction: Share of the other images kept, 0 to 1.
        max_bytes: Maximum total size of the kept images of the project.
    """

    margin: float = 0.15
    confidence: float = 0.6
    fraction: float = 0.05
    max_bytes: int = 2 << 30

    def __post_init__(self) -> None:
        for name in ("margin", "confidence", "fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"capture {name} {value} is invalid; use a number from 0 to 1")
        if self.max_bytes < 0:
            raise InvalidInputError(f"capture disk limit {self.max_bytes} bytes is invalid; use 0 or more")

    def reason(self, prediction: Prediction, sha256: str) -> str:
        """Return why an image is kept (``near_threshold``, ``low_confidence``, ``unusual_input``, ``sampled``) or ``not_sampled``."""
        if abs(prediction.score - prediction.threshold) <= self.margin:
            return "near_threshold"
        if prediction.probabilities and max(prediction.probabilities.values()) < self.confidence:
            return "low_confidence"
        if prediction.warnings:
            return "unusual_input"
        if int(sha256[:8], 16) / 0x1_0000_0000 < self.fraction:
            return "sampled"
        return "not_sampled"


class Capture:
    """Records predictions into one project of a workspace; safe to call from several threads.

    Raises:
        NotFoundError: The project does not exist.
    """

    def __init__(self, workspace: Workspace, project_name: str, rule: CaptureRule = CaptureRule()) -> None:
        self.workspace = workspace
        self.rule = rule
        self._lock = threading.Lock()
        with workspace.session() as session:
            project = workspace.get_project(session, project_name)
            self.project_id, self.project_name = project.id, project.name
            self._used = int(session.scalar(
                select(func.coalesce(func.sum(Inference.size_bytes), 0))
                .where(Inference.project_id == project.id, Inference.reason.in_(KEPT_REASONS))) or 0)

    def record(self, name: str, data: bytes, image: DecodedImage, prediction: Prediction, *, model: str,
               metadata: dict[str, Any]) -> dict[str, Any]:
        """Store one prediction and, by the rule, its image; return the inference id, reason and image id."""
        sha256 = hashlib.sha256(data).hexdigest()
        reason = self.rule.reason(prediction, sha256)
        stats = image_statistics(image.pixels)
        with self._lock, self.workspace.session() as session:
            existing = session.scalar(select(Image.id).where(Image.project_id == self.project_id, Image.sha256 == sha256))
            image_id = existing
            if existing is not None and reason in KEPT_REASONS:
                reason = "already_stored"
            elif reason in KEPT_REASONS and self._used + len(data) > self.rule.max_bytes:
                reason = "disk_full"
            elif reason in KEPT_REASONS:
                image_id = self._store_image(session, name, data, sha256, image, prediction, model, metadata)
                self._used += len(data)
            inference = Inference(
                project_id=self.project_id, image_id=image_id, name=name, sha256=sha256, size_bytes=len(data),
                model=model, label=prediction.label, score=float(prediction.score), threshold=prediction.threshold,
                is_defect=bool(prediction.is_defect), probabilities=prediction.probabilities, meta=metadata,
                stats=stats, reason=reason,
            )
            session.add(inference)
            session.flush()
            inference_id = inference.id
        if reason == "disk_full":
            logger.warning("capture into %s is at its disk limit of %d bytes; %s was not kept",
                           self.project_name, self.rule.max_bytes, name)
        return {"inference_id": inference_id, "reason": reason, "image_id": image_id}

    def _store_image(self, session: Any, name: str, data: bytes, sha256: str, image: DecodedImage,
                     prediction: Prediction, model: str, metadata: dict[str, Any]) -> int:
        now = datetime.now(timezone.utc)
        self.workspace.blobs.put(data)
        path = f"{PRODUCTION_FOLDER}/{now:%Y-%m-%d}/{sha256[:16]}{PurePosixPath(name).suffix.lower()}"
        stored = Image(
            project_id=self.project_id, path=path, sha256=sha256, format=image.format, width=image.width,
            height=image.height, channels=image.channels, bit_depth=image.bit_depth, split=None,
            meta={**metadata, "source": PRODUCTION_FOLDER, "name": name, "captured_at": now.isoformat(timespec="seconds"),
                  "prediction": {"model": model, "label": prediction.label, "score": round(float(prediction.score), 6),
                                 "is_defect": bool(prediction.is_defect)}},
        )
        session.add(stored)
        session.flush()
        return stored.id


def check_metadata(value: Any, where: str) -> dict[str, Any]:
    """Return caller metadata as a dict of short keys and plain values, or raise naming ``where``.

    Raises:
        InvalidInputError: Not an object, too many keys, or a value that is not text, a number or true/false.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"{where} is {type(value).__name__}; send an object such as "
                                '{"station": "line 2", "camera": "top"}')
    if len(value) > _MAX_KEYS:
        raise InvalidInputError(f"{where} has {len(value)} keys; send at most {_MAX_KEYS}")
    for key, item in value.items():
        if len(key) > 100 or not key:
            raise InvalidInputError(f"{where}: key {key[:100]!r} is invalid; use 1 to 100 characters")
        if item is not None and not isinstance(item, (str, int, float, bool)):
            raise InvalidInputError(f"{where}: value of {key!r} is {type(item).__name__}; use text, a number or true/false")
        if isinstance(item, str) and len(item) > _MAX_TEXT:
            raise InvalidInputError(f"{where}: value of {key!r} has {len(item)} characters; use at most {_MAX_TEXT}")
    return dict(value)
