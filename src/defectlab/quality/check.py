"""One report of a project's data issues: suspicious labels, outliers, duplicates, leakage, imaging problems, coverage.

- Suspicious labels (classification): out-of-fold class probabilities from the
  patch head that training uses (5 stratified folds, features extracted once),
  then confident learning from ``cleanlab``. Each flagged
  image has the label given, the label suggested and a score (1 - label quality).
  Classes with fewer than 5 labeled images cannot be cross-validated and are
  left out of this search. The report's notes name them.
- Suspicious labels (segmentation and detection): out-of-fold segmenters or
  detectors (3 folds), then ``cleanlab.segmentation`` or
  ``cleanlab.object_detection``, as ``defectlab.quality.region_labels``
  describes. Each issue adds what is probably wrong (``problem``) and where (``box``).
- Outliers (every task type, labeled or not): images unlike the rest of the
  project, such as another part or another camera, found from pretrained
  backbone features as ``defectlab.quality.outliers`` describes.
- Duplicates: exact duplicates have the same decoded pixels. Near duplicates
  (re-encoded, resized, or the same part at another exposure) are found as
  ``defectlab.quality.duplicates`` describes. A pair split across
  train and dev or test is leakage: the model is measured on what it trained on.
- Imaging problems: too dark, too bright, little contrast, blurry compared with
  the project's other images, an odd aspect ratio, or a bit depth or channel
  count unlike most images.
- Coverage: project classes with fewer than ``MIN_IMAGES_PER_CLASS`` labeled
  images, including classes with none.
"""

from __future__ import annotations

import hashlib
import logging
import math
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select

from defectlab.data.pixels import StoredPixels, Subset
from defectlab.data.snapshot import image_label
from defectlab.errors import InvalidInputError
from defectlab.formats.records import OK_CLASS
from defectlab.images.statistics import image_statistics
from defectlab.quality.duplicates import NEAR_DISTANCE, near_pairs, thumbnail
from defectlab.quality.outliers import (
    MIN_IMAGES_FOR_OUTLIERS,
    OutlierScores,
    find_outliers,
    get_outlier_scores,
    image_features,
)
from defectlab.quality.region_labels import find_suspicious_regions
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Image

__all__ = [
    "MIN_IMAGES_PER_CLASS",
    "NEAR_DISTANCE",
    "LabelScores",
    "check_project",
    "find_suspicious_labels",
    "load_items",
    "score_labels",
]

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


@dataclass(frozen=True)
class LabelScores:
    """Out-of-fold scores of the labeled images whose classes can be cross-validated.

    Attributes:
        rows: Index into the checked items of each scored image.
        classes: Class names, ``ok`` first; the column order of ``pred_probs``.
        labels: Given class index per scored image, int64 ``(N,)``.
        pred_probs: Out-of-fold class probabilities, float32 ``(N, C)``.
        quality: cleanlab label quality per scored image, in 0..1; low means
            the probabilities contradict the given label.
    """

    rows: list[int]
    classes: list[str]
    labels: np.ndarray
    pred_probs: np.ndarray
    quality: np.ndarray


def check_project(workspace: Workspace, project_name: str, *, labels: bool = True) -> dict[str, Any]:
    """Check a project's images and labels for the issues the module docstring lists.

    Args:
        labels: Whether to search for suspicious labels (the slowest part).

    Returns:
        ``{"project", "images", "counts": {kind: n}, "issues": [...], "notes": [...]}``.
        Issues are worst first within each kind. Notes are plain sentences about
        parts of the check that were skipped or limited, and why.

    Raises:
        NotFoundError: The project does not exist.
    """
    task, items, pixels = load_items(workspace, project_name)
    classes = _class_names(workspace, project_name)
    prints = [_fingerprint(pixels[index]) for index in range(len(items))]

    issues: list[dict[str, Any]] = []
    notes: list[str] = []
    if labels and task == "classification":
        notes += _label_search_notes(items)
        issues += _suspicious_labels(items, pixels)
    elif labels and task in ("segmentation", "detection"):
        region_issues, region_notes = find_suspicious_regions(workspace, project_name)
        issues += region_issues
        notes += region_notes
    notes += _outlier_search_notes(items)
    issues += _outliers(items, pixels)
    issues += [*_duplicates(items, prints), *_imaging(items, [stats for _, _, stats in prints]),
               *_coverage(items, classes)]

    counts = Counter(issue["kind"] for issue in issues)
    logger.info("checked %d images of %s: %s", len(items), project_name, dict(counts))
    return {"project": project_name, "images": len(items), "counts": dict(sorted(counts.items())),
            "issues": issues, "notes": notes}


def load_items(workspace: Workspace, project_name: str) -> tuple[str, list[_Item], StoredPixels]:
    """Return the project's task, its images in id order, and their pixels (decoded on access)."""
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        task = project.task
        items = [_Item(i.id, i.path, i.sha256, i.split, image_label(i.annotations), i.bit_depth, i.channels)
                 for i in session.scalars(select(Image).where(Image.project_id == project.id).order_by(Image.id))]
    return task, items, StoredPixels(workspace.blobs, [item.sha256 for item in items], [item.path for item in items])


def _class_names(workspace: Workspace, project_name: str) -> list[str]:
    with workspace.session() as session:
        return [defect_class.name for defect_class in workspace.get_project(session, project_name).classes]


def _fingerprint(pixels: np.ndarray) -> tuple[str, np.ndarray, dict[str, float]]:
    """Return a digest of the decoded pixels, the thumbnail and the image statistics of one image."""
    digest = hashlib.sha256(str(pixels.shape).encode() + str(pixels.dtype).encode() + pixels.tobytes()).hexdigest()
    return digest, thumbnail(pixels), image_statistics(pixels)


def _suspicious_labels(items: list[_Item], pixels: StoredPixels) -> list[dict[str, Any]]:
    scored = score_labels(items, pixels)
    if scored is None:
        return []

    flagged, _ = find_suspicious_labels(scored.labels, scored.pred_probs)

    issues = []
    for row in flagged:
        label_index = int(scored.labels[row])
        others = scored.pred_probs[row].copy()
        others[label_index] = -1.0
        suggested = int(np.argmax(others))
        probabilities = scored.pred_probs[row]
        detail = (f"labeled {scored.classes[label_index]} (probability {probabilities[label_index]:.2f}), "
                  f"but the images most like it suggest {scored.classes[suggested]} "
                  f"(probability {probabilities[suggested]:.2f})")
        issues.append(_issue("suspicious_label", items[scored.rows[row]], round(1.0 - float(scored.quality[row]), 6),
                             detail, "relabel or confirm the label", suggested=scored.classes[suggested]))
    return issues


def _label_search_notes(items: list[_Item]) -> list[str]:
    counts = Counter(item.label for item in items if item.label is not None)
    usable = [name for name, count in counts.items() if count >= _FOLDS]
    thin = sorted((name for name, count in counts.items() if count < _FOLDS), key=lambda name: (counts[name], name))
    if len(usable) < 2:
        message = (f"Suspicious labels were not searched, because the search needs at least two classes with "
                   f"{_FOLDS} or more labeled images each, and this project has {len(usable)}.")
        return [message]
    if thin:
        listed = ", ".join(f"{name} ({counts[name]} labeled images)" for name in thin)
        message = (f"The search for suspicious labels left out {listed}, because cross-validation needs at least "
                   f"{_FOLDS} labeled images of a class.")
        return [message]
    return []


def score_labels(items: list[_Item], pixels: StoredPixels) -> LabelScores | None:
    """Score every label against out-of-fold probabilities of the patch head.

    Classes with fewer than 5 (``_FOLDS``) labeled images cannot be
    cross-validated and are left out.

    Returns:
        The scores, or None when fewer than two classes remain.
    """
    from cleanlab.rank import get_label_quality_scores

    from defectlab.training.patches import out_of_fold_probabilities

    labeled = [index for index, item in enumerate(items) if item.label is not None]
    counts = Counter(items[index].label for index in labeled)
    rows = [index for index in labeled if counts[items[index].label] >= _FOLDS]
    classes = sorted({items[index].label for index in rows}, key=lambda name: (name != OK_CLASS, name))
    if len(classes) < 2:
        return None

    label_indices = np.array([classes.index(items[index].label) for index in rows], dtype=np.int64)
    pred_probs = out_of_fold_probabilities(Subset(pixels, rows), label_indices, classes, folds=_FOLDS)
    return LabelScores(rows, classes, label_indices, pred_probs, get_label_quality_scores(label_indices, pred_probs))


def find_suspicious_labels(labels: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Find the images whose given label their probabilities contradict, by confident learning (cleanlab).

    A column of ``pred_probs`` whose class no image is labeled with is allowed.
    cleanlab (2.9, ``count.get_confident_thresholds``) sets that class's
    confidence threshold above any probability, so no image is flagged for
    looking like it. Its low label quality still ranks such an image among the worst.

    Args:
        labels: Given class index per image, int ``(N,)``, each in ``0..C-1``.
        pred_probs: Out-of-fold class probabilities, float ``(N, C)`` with
            ``C >= 2``, each row summing to 1.

    Returns:
        Two arrays. The first contains the flagged rows, lowest label quality
        first, int64 ``(M,)``. The second contains the label quality of every
        row, float64 ``(N,)`` in 0..1: the probability given to its label.

    Raises:
        InvalidInputError: The shapes disagree, a label is outside ``0..C-1``,
            or a row of ``pred_probs`` is not a probability distribution. The
            message lists the offending rows.
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels, pred_probs = _check_label_scores(labels, pred_probs)
    if len(labels) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)

    empty = sorted(set(range(pred_probs.shape[1])) - set(labels.tolist()))
    if empty:
        logger.warning("classes %s have no labeled image; no image is flagged for looking like them", empty)
    with warnings.catch_warnings():
        # cleanlab warns about such classes in terms of its own arguments; the log line above replaces that.
        warnings.filterwarnings("ignore", message="May not flag all label issues", category=UserWarning)
        flagged = find_label_issues(labels, pred_probs, return_indices_ranked_by="self_confidence")
    return np.asarray(flagged, dtype=np.int64), get_label_quality_scores(labels, pred_probs)


def _check_label_scores(labels: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    pred_probs = np.asarray(pred_probs, dtype=np.float64)
    if labels.ndim != 1 or pred_probs.ndim != 2 or len(labels) != len(pred_probs) or pred_probs.shape[1] < 2:
        raise InvalidInputError(f"labels of shape {labels.shape} and pred_probs of shape {pred_probs.shape} are "
                                "invalid; expected labels (N,) and pred_probs (N, C) with C of at least 2")
    if len(labels) and not np.issubdtype(labels.dtype, np.integer):
        raise InvalidInputError(f"labels of dtype {labels.dtype} are invalid; pass class indices as integers")
    outside = np.flatnonzero((labels < 0) | (labels >= pred_probs.shape[1]))
    if len(outside):
        raise InvalidInputError(f"labels at rows {_rows(outside)} are outside 0..{pred_probs.shape[1] - 1}; "
                                "every label must index a column of pred_probs")
    invalid = np.flatnonzero(~np.isfinite(pred_probs).all(axis=1) | (pred_probs < 0).any(axis=1)
                             | (np.abs(pred_probs.sum(axis=1) - 1.0) > 1e-3))
    if len(invalid):
        raise InvalidInputError(f"pred_probs rows {_rows(invalid)} are not probability distributions; every row "
                                "must be finite, non-negative and sum to 1")
    return labels.astype(np.int64), pred_probs


def _rows(indices: np.ndarray) -> str:
    first = ", ".join(str(int(index)) for index in indices[:10])
    return first + (f" and {len(indices) - 10} more" if len(indices) > 10 else "")


def _outlier_search_notes(items: list[_Item]) -> list[str]:
    if len(items) >= MIN_IMAGES_FOR_OUTLIERS:
        return []
    message = (f"Outliers were not searched, because the search needs at least {MIN_IMAGES_FOR_OUTLIERS} images "
               f"to learn what is usual, and this project has {len(items)}.")
    return [message]


def _outliers(items: list[_Item], pixels: StoredPixels) -> list[dict[str, Any]]:
    if len(items) < MIN_IMAGES_FOR_OUTLIERS:
        return []
    # NOTE: out_of_fold_probabilities extracts these blocks again for the label search, because it
    # takes no precomputed features. Passing them in would save one backbone pass over the images.
    scores = get_outlier_scores(image_features(pixels))

    issues = []
    for index in find_outliers(scores):
        issues.append(_issue(
            "outlier", items[index], round(float(scores.scores[index]), 3), _outlier_detail(scores, index),
            "check that it belongs to this project; exclude it if it shows another part or camera",
            distance_ratio=round(float(scores.ratios[index]), 3)))
    return issues


def _outlier_detail(scores: OutlierScores, index: int) -> str:
    share = float(scores.shares_closer[index])
    # Rounded down, so that "farther than 99%" is never an overstatement. The epsilon undoes float error.
    compared = ("than any other image is" if share >= 1.0
                else f"than {math.floor(share * 100 + 1e-9)}% of the other images are")
    return (f"unlike the other images of this project: {scores.ratios[index]:.1f} times as far from its "
            f"{scores.neighbors} nearest images as the typical image, farther {compared}")


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


def _coverage(items: list[_Item], classes: list[str]) -> list[dict[str, Any]]:
    """Return one issue per project class with fewer than ``MIN_IMAGES_PER_CLASS`` labeled images, fewest first."""
    counts = Counter(item.label for item in items if item.label is not None)
    thin = sorted((name for name in classes if counts[name] < MIN_IMAGES_PER_CLASS), key=lambda name: counts[name])

    issues = []
    for name in thin:
        count = counts[name]
        detail = f"class {name} has no labeled images" if count == 0 else f"class {name} has {count} labeled images"
        missing = MIN_IMAGES_PER_CLASS - count
        action = f"add about {missing} more {'image' if missing == 1 else 'images'} of {name}"
        issues.append({"kind": "coverage", "class": name, "images": count, "score": float(missing),
                       "detail": detail, "action": action})
    return issues


def _issue(kind: str, item: _Item, score: float, detail: str, action: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "image_id": item.image_id, "path": item.path, "split": item.split, "label": item.label,
            "score": score, "detail": detail, "action": action, **extra}
