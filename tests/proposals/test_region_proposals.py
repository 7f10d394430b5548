"""Proposals from trained region models carry regions, and accepting one stores them as the label."""

from __future__ import annotations

from pathlib import Path

import pytest

from defectlab.data.annotations import read_annotations, save_annotations
from defectlab.data.importer import import_path
from defectlab.data.labels import list_images
from defectlab.proposals import list_proposals, make_proposals, review_proposal
from defectlab.samples import write_class_folders
from defectlab.training.run import train_project
from defectlab.workspace import Workspace


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> Path:
    return write_class_folders(tmp_path_factory.mktemp("parts") / "images", good=8, per_defect=6, size=96)


def unlabel_test_images(workspace: Workspace) -> list[int]:
    """Remove the labels of the test split's images, which training did not see; return their ids."""
    chosen = [row for row in list_images(workspace, "plates") if row["split"] == "test"]
    for row in chosen:
        save_annotations(workspace, "plates", row["id"], labeler="test", version=row["version"])
    return [row["id"] for row in chosen]


@pytest.mark.slow
@pytest.mark.parametrize(("task", "shape"), [("detection", "box"), ("segmentation", "mask")])
def test_region_proposal_accepted_as_regions(parts: Path, tmp_path: Path, task: str, shape: str) -> None:
    workspace = Workspace.open(tmp_path / "ws")
    workspace.create_project("plates", task)
    import_path(workspace, "plates", parts)
    result = train_project(workspace, "plates", overrides={"epochs": 3})
    unlabeled = unlabel_test_images(workspace)

    summary = make_proposals(workspace, "plates", source="model", blind_share=0.0)

    assert summary["source"] == f"model {result.model_id}"
    assert summary["proposed"] == len(unlabeled)
    proposals = list_proposals(workspace, "plates")
    with_regions = [row for row in proposals if row["regions"]]
    assert with_regions, "the model proposed no region on any test image"
    for row in proposals:
        assert (row["label"] == "ok") == (not row["regions"])
    chosen = with_regions[0]
    review_proposal(workspace, "plates", chosen["id"], reviewer="ann", action="accept")
    label = read_annotations(workspace, "plates", chosen["image_id"])
    assert label["state"] == "defective"
    assert [region["class"] for region in label["regions"]] == [region["class"] for region in chosen["regions"]]
    assert all(shape in region for region in label["regions"])
    workspace.close()
