"""One report of a project's data issues: suspicious labels, duplicates, leakage, imaging problems, coverage.

- Suspicious labels (classification): out-of-fold class probabilities from the
  patch head that training uses (5 stratified folds, features extracted once),
  then confident learning from ``cleanlab``. Each flagged
  image has the label given, the label suggested and a score (1 - label quality).
- Duplicates: exact duplicates have the same decoded pixels. Near duplicates
  (re-encoded, resized, or the same part at another exposure) are found as
  ``defectlab.quality.duplicates`` describes. A pair split across
  train and dev or test is leakage: the model is measured on what it trained on.
- Imaging problems: too dark, too bright, little contrast, blurry compared with
  the project's other images, an odd aspect ratio, or a bit depth or channel
  count unlike most images.
- Coverage: classes with fewer than ``MIN_IMAGES_PER_CLASS`` labeled images.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select

from defectlab.data.pixels import StoredPixels, Subset
from defectlab.data.snapshot import image_label
from defectlab.formats.records import OK_CLASS
from defectlab.images.statistics import image_statistics
from defectlab.quality.duplicates import NEAR_DISTANCE, near_pairs, thumbnail
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Image

__all__ = ["MIN_IMAGES_PER_CLASS", "NEAR_DISTANCE", "check_project", "load_items", "score_labels"]

logger = logging.getLogger(__name__)

MIN_IMAGES_PER_CLASS = 20
"""Fewer labeled images than this in a class is reported as thin coverage."""

_FOLDS = 5


@dataclass
class _Item:
    image_id: int
    path: str
    sha256: str
    split: str | None
    label: str | None
    bit_depth: int
    channels: int


def check_project(workspace: Workspace, project_name: str, *, labels: bool = True) -> dict[str, Any]:
    """Return ``{"counts": {kind: n}, "issues": [...]}`` for the project's images, worst first within each kind.

    Args:
        labels: Whether to search for suspicious labels (the slowest part).
    """
    task, items, pixels = load_items(workspace, project_name)
    prints = [_fingerprint(pixels[index]) for index in range(len(items))]
    issues = [*_duplicates(items, prints), *_imaging(items, [stats for _, _, stats in prints]), *_coverage(items)]
    if labels and task == "classification":
        issues = _suspicious_labels(items, pixels) + issues
    counts = Counter(issue["kind"] for issue in issues)
    logger.info("checked %d images of %s: %s", len(items), project_name, dict(counts))
    return {"project": project_name, "images": len(items), "counts": dict(sorted(counts.items())), "issues": issues}


def load_items(workspace: Workspace, project_name: str) -> tuple[str, list[_Item], StoredPixels]:
    """Return the project's task, its images in id order, and their pixels (decoded on access)."""
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        task = project.task
        items = [_Item(i.id, i.path, i.sha256, i.split, image_label(i.annotations), i.bit_depth, i.channels)
                 for i in session.scalars(select(Image).where(Image.project_id == project.id).order_by(Image.id))]
    return task, items, StoredPixels(workspace.blobs, [item.sha256 for item in items], [item.path for item in items])


def _fingerprint(pixels: np.ndarray) -> tuple[str, np.ndarray, dict[str, float]]:
    """Return a digest of the decoded pixels, the thumbnail and the image statistics of one image."""
    digest = hashlib.sha256(str(pixels.shape).encode() + str(pixels.dtype).encode() + pixels.tobytes()).hexdigest()
    return digest, thumbnail(pixels), image_statistics(pixels)


def _suspicious_labels(items: list[_Item], pixels: StoredPixels) -> list[dict[str, Any]]:
    from cleanlab.filter import find_label_issues

    scored = score_labels(items, pixels)
    if scored is None:
        return []
    usable, classes, given, probabilities, quality = scored
    flagged = find_label_issues(given, probabilities, return_indices_ranked_by="self_confidence")
    return [_issue("suspicious_label", items[usable[row]], round(1.0 - float(quality[row]), 6),
                   f"labeled {classes[given[row]]}, but the images most like it suggest "
                   f"{classes[int(np.argmax(probabilities[row]))]}", "relabel or confirm the label",
                   suggested=classes[int(np.argmax(probabilities[row]))])
            for row in flagged]


def score_labels(items: list[_Item], pixels: StoredPixels) -> tuple[list[int], list[str], np.ndarray, np.ndarray, np.ndarray] | None:
    """Return the scored item indices, classes, given class indices, out-of-fold probabilities and label quality.

    Classes with fewer than ``_FOLDS`` labeled images cannot be cross-validated
    and are left out; None when fewer than two classes remain.
    """
    from cleanlab.rank import get_label_quality_scores

    from defectlab.training.patches import out_of_fold_probabilities

    labeled = [index for index, item in enumerate(items) if item.label is not None]
    counts = Counter(items[index].label for index in labeled)
    usable = [index for index in labeled if counts[items[index].label] >= _FOLDS]
    classes = sorted({items[index].label for index in usable}, key=lambda name: (name != OK_CLASS, name))
    if len(classes) < 2:
        return None
    given = np.array([classes.index(items[index].label) for index in usable])
    probabilities = out_of_fold_probabilities(Subset(pixels, usable), given, classes, folds=_FOLDS)
    return usable, classes, given, probabilities, get_label_quality_scores(given, probabilities)


def _duplicates(items: list[_Item], prints: list[tuple[str, np.ndarray, dict[str, float]]]) -> list[dict[str, Any]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for index, (digest, _, _) in enumerate(prints):
        groups[digest].append(index)
    issues = []
    exact = set()
    for members in groups.values():
        for other in members[1:]:
            exact.add((members[0], other))
            issues.append(_pair("exact_duplicate", items, members[0], other, 0.0))
    for distance, a, b in sorted(near_pairs(np.stack([t for _, t, _ in prints]) if prints else np.zeros((0, 1)))):
        if (a, b) not in exact:
            issues.append(_pair("near_duplicate", items, a, b, distance))
    split_of = {item.image_id: item.split for item in items}
    leaks = [dict(issue, kind="leakage", action="keep both images in one split, or exclude one")
             for issue in issues if _splits_differ(split_of[issue["image_id"]], split_of[issue["other_image_id"]])]
    return issues + leaks


def _splits_differ(first: str | None, second: str | None) -> bool:
    splits = {first, second}
    return "train" in splits and bool(splits & {"dev", "test"})


def _pair(kind: str, items: list[_Item], a: int, b: int, distance: float) -> dict[str, Any]:
    detail = f"same pixels as {items[b].path}" if kind == "exact_duplicate" else \
        f"nearly the same image as {items[b].path} (thumbnail distance {distance:.4f})"
    return _issue(kind, items[a], round(1.0 - distance, 6), detail, "exclude one of the two",
                  other_image_id=items[b].image_id, other_path=items[b].path)


def _imaging(items: list[_Item], stats: list[dict[str, float]]) -> list[dict[str, Any]]:
    if not items:
        return []
    sharpness = np.array([s["sharpness"] for s in stats])
    aspect = np.array([s["width"] / s["height"] for s in stats])
    usual_depth = Counter(item.bit_depth for item in items).most_common(1)[0][0]
    usual_channels = Counter(item.channels for item in items).most_common(1)[0][0]
    median_sharpness, median_aspect = float(np.median(sharpness)), float(np.median(aspect))
    issues = []
    for item, s, sharp, ratio in zip(items, stats, sharpness, aspect):
        problems = []
        if s["brightness"] < 0.08:
            problems.append(f"too dark (mean brightness {s['brightness']:.2f} of 1)")
        if s["brightness"] > 0.92:
            problems.append(f"too bright (mean brightness {s['brightness']:.2f} of 1)")
        if s["contrast"] < 0.01:
            problems.append(f"almost no contrast (standard deviation {s['contrast']:.3f} of 1)")
        if median_sharpness > 0 and sharp < 0.25 * median_sharpness:
            problems.append(f"blurry (sharpness {sharp:.4f} against {median_sharpness:.4f} typical)")
        if not 0.5 <= ratio / median_aspect <= 2.0:
            problems.append(f"odd aspect ratio {ratio:.2f} (typical {median_aspect:.2f})")
        if item.bit_depth != usual_depth or item.channels != usual_channels:
            problems.append(f"{item.bit_depth}-bit with {item.channels} channel(s), unlike most images "
                            f"({usual_depth}-bit, {usual_channels})")
        if problems:
            issues.append(_issue("imaging", item, float(len(problems)), "; ".join(problems),
                                 "check the camera set-up, or exclude the image"))
    return issues


def _coverage(items: list[_Item]) -> list[dict[str, Any]]:
    counts = Counter(item.label for item in items if item.label is not None)
    return [{"kind": "coverage", "class": name, "images": count, "score": float(MIN_IMAGES_PER_CLASS - count),
             "detail": f"class {name} has {count} labeled images",
             "action": f"add about {MIN_IMAGES_PER_CLASS - count} more images of {name}"}
            for name, count in sorted(counts.items(), key=lambda pair: pair[1]) if count < MIN_IMAGES_PER_CLASS]


def _issue(kind: str, item: _Item, score: float, detail: str, action: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "image_id": item.image_id, "path": item.path, "split": item.split, "label": item.label,
            "score": score, "detail": detail, "action": action, **extra}
