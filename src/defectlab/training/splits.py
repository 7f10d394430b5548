"""Assign train, dev and test splits to labeled images that have none.

The assignment is stratified by class and stable: an image's place in the
shuffled order comes from its SHA-256 and the seed, so re-running a split on
the same images gives the same result whatever their order.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

from defectlab.data.snapshot import SnapshotImage
from defectlab.formats.records import OK_CLASS

__all__ = ["assign_splits", "DEV_FRACTION", "TEST_FRACTION"]

DEV_FRACTION = 0.15
TEST_FRACTION = 0.2


def assign_splits(images: list[SnapshotImage], *, task: str, seed: int = 0) -> dict[int, str]:
    """Return ``{image_id: split}`` for the labeled images that need a split.

    Those are the images whose split is None. When no labeled image is in dev
    or test, the ``train`` images count too, because a model needs held-out
    images to be chosen and measured; a YOLO dataset, for one, may file every
    image under ``train``. For anomaly projects they also include
    defective ``train`` images, because such a model trains on good images only.

    Classification images are split per class into train, dev and test, with
    at least one image of each class left for training. Defective images of an
    anomaly project go to dev and test alone.
    """
    labeled = [image for image in images if image.label is not None]
    held_out = any(image.split in ("dev", "test") for image in labeled)
    groups: dict[str, list[SnapshotImage]] = defaultdict(list)
    for image in labeled:
        if _needs_split(image, task=task, held_out=held_out):
            groups[image.label].append(image)

    assigned: dict[int, str] = {}
    for label, members in sorted(groups.items()):
        ordered = sorted(members, key=lambda image: _rank(image, seed))
        defective_anomaly = task == "anomaly" and label != OK_CLASS
        for image, split in zip(ordered, _split_names(len(ordered), calibration_only=defective_anomaly)):
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


def _rank(image: SnapshotImage, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{image.sha256}:{image.path}".encode()).hexdigest()
