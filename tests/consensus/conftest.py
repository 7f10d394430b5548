"""A small classification project and a segmentation project to hand to labelers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.data.importer import import_path
from defectlab.data.labels import list_images


def write_flat_images(root: Path, classes: dict[str, int], size: int = 16) -> None:
    """Write ``count`` small grayscale PNGs into one folder per class name."""
    for index, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True)
        for number in range(count):
            pixels = np.full((size, size), 10 * number + 60 * index, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{number}.png")


@pytest.fixture
def write_images():
    return write_flat_images


@pytest.fixture
def project(workspace, tmp_path) -> dict[str, int]:
    """Create project ``parts`` (classes ok, dent, scratch) with 6 images; return their ids by path."""
    write_flat_images(tmp_path / "source", {"ok": 2, "dent": 2, "scratch": 2})
    workspace.create_project("parts", "classification")
    import_path(workspace, "parts", tmp_path / "source")
    return {row["path"]: row["id"] for row in list_images(workspace, "parts")}
