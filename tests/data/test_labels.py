"""Setting an image's class by hand: the newest class counts, after the workspace is opened again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from defectlab.data.importer import import_path
from defectlab.data.labels import list_images, set_image_class
from defectlab.workspace import Workspace


def test_newest_class_wins_after_reopening(tmp_path: Path) -> None:
    (tmp_path / "source" / "dent").mkdir(parents=True)
    Image.fromarray(np.full((8, 8), 90, dtype=np.uint8)).save(tmp_path / "source" / "dent" / "a.png")
    workspace = Workspace.open(tmp_path / "ws")
    workspace.create_project("parts", "classification")
    import_path(workspace, "parts", tmp_path / "source")
    image_id = list_images(workspace, "parts")[0]["id"]

    assert set_image_class(workspace, "parts", image_id, "ok", labeler="ana")["label"] == "ok"
    workspace.close()
    again = Workspace.open(tmp_path / "ws")
    assert list_images(again, "parts")[0]["label"] == "ok"
    set_image_class(again, "parts", image_id, "dent", labeler="ben")
    set_image_class(again, "parts", image_id, "ok", labeler="ana")
    assert list_images(again, "parts")[0]["label"] == "ok"
    again.close()
