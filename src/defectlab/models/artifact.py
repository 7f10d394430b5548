"""The model artifact: one file with everything prediction needs.

It contains the weights, the pre-processing (input size and intensity window),
the class names, the threshold, the settings and reasons the auto-tuner
chose, the ids of the images it was trained on and the loss history. It is
a ``torch.save`` file of tensors and plain Python values, so it loads with
``torch.load(weights_only=True)`` and no code is executed on load.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from defectlab.errors import InvalidInputError, NotFoundError

__all__ = ["ARTIFACT_FORMAT", "ARTIFACT_VERSION", "dump_artifact", "load_artifact", "new_artifact"]

ARTIFACT_FORMAT = "defectlab-model"
ARTIFACT_VERSION = 1


def new_artifact(*, task: str, class_names: list[str], threshold: float, preprocessing: dict[str, Any],
                 state: dict[str, Any], settings: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Assemble an artifact dictionary; ``extra`` adds provenance such as ``image_ids``."""
    from defectlab import __version__

    return {
        "format": ARTIFACT_FORMAT,
        "version": ARTIFACT_VERSION,
        "defectlab_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": task,
        "class_names": list(class_names),
        "threshold": float(threshold),
        "preprocessing": preprocessing,
        "state": state,
        "settings": settings,
        **extra,
    }


def dump_artifact(artifact: dict[str, Any]) -> bytes:
    """Serialize an artifact; NumPy numbers and arrays become Python numbers and tensors, which load safely."""
    stream = io.BytesIO()
    torch.save(_plain(artifact), stream)
    return stream.getvalue()


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    return value


def load_artifact(source: bytes | Path, *, name: str = "<bytes>") -> dict[str, Any]:
    """Load an artifact from bytes or a file, checking that it is one.

    Raises:
        InvalidInputError: The file is not a defectlab model or was written by
            a newer version of defectlab.
    """
    if isinstance(source, Path):
        name = str(source)
        try:
            source = source.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"model file {name} does not exist; give a model id, a model file or a bundle folder") from None
    try:
        artifact = torch.load(io.BytesIO(source), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for a foreign file
        raise InvalidInputError(f"{name} is not a defectlab model file ({error})") from error
    if not isinstance(artifact, dict) or artifact.get("format") != ARTIFACT_FORMAT:
        raise InvalidInputError(f"{name} is not a defectlab model file; export one with 'defectlab export-model'")
    if artifact.get("version", 0) > ARTIFACT_VERSION:
        raise InvalidInputError(
            f"{name} was written by a newer defectlab (artifact version {artifact['version']}); upgrade defectlab"
        )
    return artifact
