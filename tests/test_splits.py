"""Split assignment: stratified, stable, and never without held-out images."""

from __future__ import annotations

from collections import Counter

from defectlab.data.snapshot import SnapshotImage
from defectlab.training.splits import assign_splits


def image(index: int, label: str | None, split: str | None = None) -> SnapshotImage:
    return SnapshotImage(image_id=index, path=f"{index}.png", sha256=f"{index:064d}", width=8, height=8,
                         channels=1, bit_depth=8, split=split, label=label)


def test_classes_split_with_train_kept() -> None:
    images = [image(i, "ok") for i in range(20)] + [image(20 + i, "dent") for i in range(3)]
    assigned = assign_splits(images, task="classification")
    ok = Counter(assigned[i] for i in range(20))
    dent = Counter(assigned[20 + i] for i in range(3))
    assert ok == {"train": 13, "test": 4, "dev": 3}
    assert dent["train"] >= 1
    assert sum(dent.values()) == 3


def test_user_splits_kept() -> None:
    images = [image(0, "ok", "test"), image(1, "ok", "train"), image(2, "ok")]
    assert assign_splits(images, task="classification") == {2: "train"}


def test_everything_in_train_gets_held_out_images() -> None:
    images = [image(i, "ok", "train") for i in range(20)]
    assigned = assign_splits(images, task="classification")
    assert Counter(assigned.values()) == {"train": 13, "test": 4, "dev": 3}


def test_anomaly_defects_never_train() -> None:
    images = [image(i, "ok", "train") for i in range(10)] + [image(10 + i, "crack", "train") for i in range(4)]
    images.append(image(99, "ok", "test"))
    assigned = assign_splits(images, task="anomaly")
    assert {assigned[10 + i] for i in range(4)} <= {"dev", "test"}
    assert all(i not in assigned for i in range(10))


def test_unlabeled_images_get_no_split() -> None:
    assert assign_splits([image(0, None), image(1, None, "train")], task="classification") == {}


def test_assignment_is_stable_under_reordering() -> None:
    images = [image(i, "ok") for i in range(30)]
    assert assign_splits(images, task="classification") == assign_splits(images[::-1], task="classification")


def test_near_duplicates_share_a_split() -> None:
    images = [image(i, "ok") for i in range(40)] + [image(40 + i, "dent") for i in range(10)]
    near = {i: f"tile {i // 4}" for i in range(40)}
    near.update({40: "tile 0", 41: "tile 0"})
    assigned = assign_splits(images, task="classification", near=near)
    for tile in {name for name in near.values()}:
        members = [i for i, name in near.items() if name == tile]
        assert len({assigned[i] for i in members}) == 1, tile
    assert set(assigned.values()) == {"train", "dev", "test"}


def test_group_follows_a_kept_split() -> None:
    images = [image(0, "ok", "test"), image(1, "ok"), image(2, "ok"), image(3, "ok", "train")]
    assigned = assign_splits(images, task="classification", near={0: "a", 1: "a"})
    assert assigned[1] == "test"


def test_defective_anomaly_image_never_follows_into_train() -> None:
    images = [image(0, "ok", "train"), image(1, "ok", "test"), image(2, "dent")]
    assigned = assign_splits(images, task="anomaly", near={0: "a", 2: "a"})
    assert assigned[2] in ("dev", "test")


def test_training_keeps_copies_in_one_split(workspace, tmp_path) -> None:
    import shutil

    from defectlab.data.importer import import_path
    from defectlab.data.labels import list_images
    from defectlab.samples import write_class_folders
    from defectlab.training.run import train_project

    images = write_class_folders(tmp_path / "images", good=30, per_defect=4, size=64, seed=6)
    for index in range(8):
        shutil.copyfile(images / "good" / f"{index:03d}.png", images / "good" / f"copy_{index:03d}.png")
    workspace.create_project("parts", "anomaly")
    import_path(workspace, "parts", images)
    train_project(workspace, "parts")
    splits = {row["path"]: row["split"] for row in list_images(workspace, "parts")}
    for index in range(8):
        assert splits[f"good/copy_{index:03d}.png"] == splits[f"good/{index:03d}.png"]
