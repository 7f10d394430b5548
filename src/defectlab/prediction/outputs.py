"""Files that prediction writes: heatmap PNGs and portable model files."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from defectlab.workspace import Workspace

__all__ = ["heatmap_png", "save_heatmap", "save_mask", "write_model_file"]


def save_heatmap(heatmap: np.ndarray, folder: Path, image_path: str) -> Path:
    """Save a 0..1 heatmap as an 8-bit grayscale PNG (0..255) named after the image; return its path.

    A second image with the same file name gets a numbered name instead of
    overwriting the first one's heatmap.
    """
    target = _free_name(folder, image_path, "heatmap")
    target.write_bytes(heatmap_png(heatmap))
    return target


def save_mask(mask: np.ndarray, folder: Path, image_path: str) -> Path:
    """Save a predicted class mask (0 for no defect, else the class's index) as an 8-bit PNG; return its path."""
    target = _free_name(folder, image_path, "mask")
    stream = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8)).save(stream, format="PNG")
    target.write_bytes(stream.getvalue())
    return target


def _free_name(folder: Path, image_path: str, kind: str) -> Path:
    """Return ``folder/<stem>.<kind>.png``, numbered when another image of the same name took it."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(image_path).stem
    target = folder / f"{stem}.{kind}.png"
    number = 2
    while target.exists():
        target = folder / f"{stem}.{kind}-{number}.png"
        number += 1
    return target


def heatmap_png(heatmap: np.ndarray) -> bytes:
    """Encode a 0..1 heatmap as an 8-bit grayscale PNG (0..255)."""
    levels = np.rint(np.clip(heatmap, 0.0, 1.0) * 255).astype(np.uint8)
    stream = io.BytesIO()
    Image.fromarray(levels).save(stream, format="PNG")
    return stream.getvalue()


def write_model_file(workspace: Workspace, model_id: int, out: Path) -> None:
    """Copy a stored model's artifact to ``out`` atomically."""
    with workspace.session() as session:
        digest = workspace.get_model(session, model_id).artifact_sha256
    data = workspace.blobs.get(digest)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=".tmp-")
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    os.replace(temporary, out)
