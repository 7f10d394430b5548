"""Assign train, dev and test splits to labeled images that have none.

The assignment is stratified by class and stable: an image's place in the
shuffled order comes from its SHA-256 and the seed, so re-running a split on
the same images gives the same result whatever their order. Near duplicates
(the same part re-encoded, resized or at another exposure) can be passed as
groups: a group goes to one split, so that no test image is a copy of a
training image.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping

from defectlab.data.snapshot import SnapshotImage
from defectlab.formats.records import OK_CLASS

__all__ = ["assign_splits", "DEV_FRACTION", "TEST_FRACTION"]

DEV_FRACTION = 0.15
TEST_FRACTION = 0.2


def assign_splits(images: list[SnapshotImage], *, task: str, seed: int = 0,
                  near: Mapping[int, str] | None = None) -> dict[int, str]:
    """Return ``{image_id: split}`` for the labeled images that need a split.

    Those are the images whose split is None. When no labeled image is in dev
    or test, the ``train`` images count too, because a model needs held-out
    images to be chosen and measured; a YOLO dataset, for one, may file every
    image under ``train``. For anomaly projects they also include
    defective ``train`` images, because such a model trains on good images only.

    Classification images are split per class into train, dev and test, with
    at least one image of each class left for training. Defective images of an
    anomaly project go to dev and test alone.

    ``near`` maps image ids to a group name (any text, the same for near
    duplicates). Members of a group are ordered next to each other. They follow
    the split of the first member placed, or of a member whose split is kept. The
    one exception: a defective image of an anomaly project never follows its
    group into train.
    """
    labeled = [image for image in images if image.label is not None]
    held_out = any(image.split in ("dev", "test") for image in labeled)
    by_label: dict[str, list[SnapshotImage]] = defaultdict(list)
    for image in labeled:
        if _needs_split(image, task=task, held_out=held_out):
            by_label[image.label].append(image)

    group_of = dict(near or {})
    decided = {group_of[image.image_id]: image.split for image in labeled if image.image_id in group_of
               and image.split is not None and not _needs_split(image, task=task, held_out=held_out)}
    assigned: dict[int, str] = {}
    for label, members in sorted(by_label.items()):
        ordered = sorted(members, key=lambda image: _rank(image, seed, group_of.get(image.image_id)))
        defective_anomaly = task == "anomaly" and label != OK_CLASS
        for image, split in zip(ordered, _split_names(len(ordered), calibration_only=defective_anomaly)):
            group = group_of.get(image.image_id)
            if group is not None:
                followed = decided.setdefault(group, split)
                split = split if defective_anomaly and followed == "train" else followed
            assigned[image.image_id] = split
    return assigned


def _needs_split(image: SnapshotImage, *, task: str, held_out: bool) -> bool:
    if image.split is None:
        return True
    if image.split != "train":
        return False
    return not held_out or (task == "anomaly" and image.label != OK_CLASS)


def _split_names(count: int, *, calibration_only: bool) -> list[str]:
    if calibration_only:
        test = (count + 1) // 2
        return ["test"] * test + ["dev"] * (count - test)
    test = round(count * TEST_FRACTION)
    dev = round(count * DEV_FRACTION)
    while count - test - dev < 1 and test + dev > 0:
        if dev >= test and dev > 0:
            dev -= 1
        else:
            test -= 1
    return ["test"] * test + ["dev"] * dev + ["train"] * (count - test - dev)


def _rank(image: SnapshotImage, seed: int, group: str | None) -> tuple[str, str]:
    own = hashlib.sha256(f"{seed}:{image.sha256}:{image.path}".encode()).hexdigest()
    return (hashlib.sha256(f"{seed}:group:{group}".encode()).hexdigest() if group is not None else own), own
