"""Files that prediction writes: heatmap PNGs and portable model files."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from defectlab.workspace import Workspace

__all__ = ["heatmap_png", "save_heatmap", "write_model_file"]


def save_heatmap(heatmap: np.ndarray, folder: Path, image_path: str) -> Path:
    """Save a 0..1 heatmap as an 8-bit grayscale PNG (0..255) named after the image; return its path.

    A second image with the same file name gets a numbered name instead of
    overwriting the first one's heatmap.
    """
    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(image_path).stem
    target = folder / f"{stem}.heatmap.png"
    number = 2
    while target.exists():
        target = folder / f"{stem}.heatmap-{number}.png"
        number += 1
    target.write_bytes(heatmap_png(heatmap))
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
