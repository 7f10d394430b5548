"""A labeler's work brought in from a dataset another tool wrote: matched by path or content, checked, kept apart."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from defectlab.consensus import create_task, import_labeler_work, labeler_view, task_agreement
from defectlab.errors import InvalidInputError


def copy_as(source, target) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def test_work_matched_by_content_with_problems_listed(workspace, project, tmp_path) -> None:
    source = tmp_path / "source"
    create_task(workspace, "parts", "round-1", ["ana", "ben"], created_by="lead",
                image_ids=[project["dent/0.png"], project["ok/0.png"]])
    copy_as(source / "dent" / "0.png", tmp_path / "ana" / "scratch" / "renamed.png")
    copy_as(source / "ok" / "0.png", tmp_path / "ana" / "ok" / "0.png")
    Image.fromarray(np.full((16, 16), 250, dtype=np.uint8)).save(tmp_path / "ana" / "ok" / "stranger.png")

    report = import_labeler_work(workspace, "parts", "round-1", "ana", tmp_path / "ana", format="folders")

    assert report.labeled == 2
    assert [str(p) for p in report.problems] == ["error: ok/stranger.png: not an image of task 'round-1'; skipped"]
    assert labeler_view(workspace, "parts", "round-1", project["dent/0.png"], "ana") == [
        {"kind": "class", "class": "scratch"}]
    assert labeler_view(workspace, "parts", "round-1", project["dent/0.png"], "ben") == []


def test_unknown_class_stores_nothing(workspace, project, tmp_path) -> None:
    create_task(workspace, "parts", "round-1", ["ana", "ben"], created_by="lead", image_ids=[project["dent/0.png"]])
    copy_as(tmp_path / "source" / "dent" / "0.png", tmp_path / "ana" / "rust" / "0.png")
    with pytest.raises(InvalidInputError, match="names class 'rust', which project 'parts' does not have"):
        import_labeler_work(workspace, "parts", "round-1", "ana", tmp_path / "ana", format="folders")
    assert labeler_view(workspace, "parts", "round-1", project["dent/0.png"], "ana") == []


def test_masks_from_two_labelers_are_compared(workspace, tmp_path) -> None:
    workspace.create_project("plates", "segmentation", ["defect"])
    (tmp_path / "plates").mkdir()
    Image.fromarray(np.full((20, 20), 120, dtype=np.uint8)).save(tmp_path / "plates" / "p.png")
    from defectlab.data.importer import import_path
    from defectlab.data.labels import list_images

    import_path(workspace, "plates", tmp_path / "plates", format="folders")
    create_task(workspace, "plates", "pits", ["ana", "ben"], created_by="lead")
    for labeler, rows in (("ana", slice(0, 10)), ("ben", slice(5, 10))):
        folder = tmp_path / labeler
        copy_as(tmp_path / "plates" / "p.png", folder / "p.png")
        mask = np.zeros((20, 20), dtype=np.uint8)
        mask[rows, 0:10] = 255
        Image.fromarray(mask).save(folder / "p_mask.png")
        import_labeler_work(workspace, "plates", "pits", labeler, tmp_path / labeler, format="masks")

    regions = task_agreement(workspace, "plates", "pits")["regions"]
    # ana's mask covers 100 pixels and ben's 50 of them: IoU 0.5 meets the threshold, so the regions match.
    assert regions["mean_agreement"] == pytest.approx(1.0)
    assert list_images(workspace, "plates")[0]["label"] is None
