"""The data check finds flipped labels, copies, leakage, imaging problems and thin classes it was given."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.data.importer import import_path
from defectlab.quality.check import check_project
from defectlab.samples import draw_part, write_class_folders


def save(pixels: np.ndarray, path: Path, **options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **options)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from defectlab.workspace import Workspace

    root = tmp_path_factory.mktemp("check")
    images = write_class_folders(root / "images", good=40, per_defect=20, size=64, seed=12)
    for mask in images.rglob("*_mask.png"):
        mask.unlink()
    # A scratch part filed as spot: a flipped label.
    shutil.move(images / "scratch" / "000.png", images / "spot" / "flipped.png")
    # An exact copy, a re-encoded copy (JPEG) and a resized copy of good parts, in the test split. The
    # originals are 256 px, like camera images, so that their fine structure survives re-encoding.
    rng = np.random.default_rng(5)
    originals = {name: draw_part(rng, size=256)[0] for name in ("large_1.png", "large_2.png", "large_3.png")}
    for name, pixels in originals.items():
        save(pixels, images / "good" / name)
    save(originals["large_1.png"], root / "images" / "test" / "good" / "exact_copy.png")
    save(originals["large_2.png"], root / "images" / "test" / "good" / "jpeg_copy.jpg", quality=80)
    save(np.asarray(Image.fromarray(originals["large_3.png"]).resize((224, 224))),
         root / "images" / "test" / "good" / "small_copy.png")
    # A nearly black part and a 16-bit one.
    save((draw_part(rng, size=64)[0] * 0.05).astype(np.uint8), images / "good" / "dark.png")
    save(draw_part(rng, size=64)[0].astype(np.uint16) * 257, images / "good" / "sixteen.png")
    train = root / "images" / "train"
    for folder in ("good", "scratch", "spot"):
        shutil.move(images / folder, train / folder)
    workspace = Workspace.open(root / "ws")
    workspace.create_project("parts", "classification")
    import_path(workspace, "parts", root / "images")
    yield check_project(workspace, "parts")
    workspace.close()


def kinds(report: dict, kind: str) -> list[dict]:
    return [issue for issue in report["issues"] if issue["kind"] == kind]


def test_flipped_label_flagged(report) -> None:
    flagged = {issue["path"]: issue for issue in kinds(report, "suspicious_label")}
    assert "train/spot/flipped.png" in flagged
    assert flagged["train/spot/flipped.png"]["suggested"] == "scratch"


def test_copies_and_leakage_found(report) -> None:
    exact = {frozenset((issue["path"], issue["other_path"])) for issue in kinds(report, "exact_duplicate")}
    assert exact == {frozenset(("train/good/large_1.png", "test/good/exact_copy.png"))}
    near = {frozenset((issue["path"], issue["other_path"])) for issue in kinds(report, "near_duplicate")}
    assert frozenset(("train/good/large_2.png", "test/good/jpeg_copy.jpg")) in near
    assert frozenset(("train/good/large_3.png", "test/good/small_copy.png")) in near
    assert len(near) == 2
    leaked = {frozenset((issue["path"], issue["other_path"])) for issue in kinds(report, "leakage")}
    assert frozenset(("train/good/large_1.png", "test/good/exact_copy.png")) in leaked
    assert frozenset(("train/good/large_2.png", "test/good/jpeg_copy.jpg")) in leaked


def test_imaging_problems_named(report) -> None:
    imaging = {issue["path"]: issue["detail"] for issue in kinds(report, "imaging")}
    assert "too dark" in imaging["train/good/dark.png"]
    assert "16-bit" in imaging["train/good/sixteen.png"]


def test_thin_classes_reported(report) -> None:
    coverage = {issue["class"]: issue for issue in kinds(report, "coverage")}
    assert set(coverage) == {"scratch"}
    assert coverage["scratch"]["images"] == 19
    assert "add about 1 more" in coverage["scratch"]["action"]
