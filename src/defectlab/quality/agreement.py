"""Agreement between labelers on image-level classes, and each labeler's escapes and overkills.

The statistics come from well-kept libraries: Krippendorff's alpha (nominal) from
``krippendorff``, Cohen's kappa from scikit-learn. The consensus of an image is
the class most of its labelers gave; a tie has no consensus and is listed for a
reviewer. Each labeler is measured against the reviewer's decision where
there is one, else against the consensus of the *other* labelers, so that
with three labelers one person's misses are not hidden by their own vote.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import select

from defectlab.errors import InvalidInputError
from defectlab.formats.records import OK_CLASS
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Image

__all__ = ["LabelTable", "collect_labels", "measure_agreement"]

logger = logging.getLogger(__name__)


@dataclass
class LabelTable:
    """Image-level classes given by each labeler.

    Attributes:
        labelers: Labeler names, one row each.
        images: ``(image id, path)`` per column.
        labels: ``labels[labeler][column]``: the class given, or None when that labeler did not label the image.
        decided: A reviewer's class per column, or None where no reviewer has
            settled the image; where set, it is the consensus each labeler is measured against.
    """

    labelers: list[str]
    images: list[tuple[int, str]]
    labels: dict[str, list[str | None]]
    decided: list[str | None] | None = None


def collect_labels(workspace: Workspace, project_name: str, *, labelers: list[str] | None = None) -> LabelTable:
    """Return the image-level classes of the project's images, per labeler (all labelers when None)."""
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        stored = session.scalars(select(Image).where(Image.project_id == project.id).order_by(Image.id)).all()
        given = {(image.id, a.labeler): a.defect_class.name for image in stored for a in image.annotations
                 if a.kind == "class"}
        images = [(image.id, image.path) for image in stored]
    names = labelers or sorted({labeler for _, labeler in given})
    table = {name: [given.get((image_id, name)) for image_id, _ in images] for name in names}
    kept = [index for index in range(len(images)) if any(table[name][index] is not None for name in names)]
    return LabelTable(names, [images[i] for i in kept], {name: [table[name][i] for i in kept] for name in names})


def measure_agreement(table: LabelTable) -> dict[str, Any]:
    """Return alpha (overall and per class), kappa per pair, per-image agreement and per-labeler quality.

    Raises:
        InvalidInputError: Fewer than two labelers, or no image labeled by two of them.
    """
    if len(table.labelers) < 2:
        raise InvalidInputError(
            f"agreement needs at least two labelers; found {len(table.labelers)} ({', '.join(table.labelers) or 'none'}). "
            "Ask a second person to label the same images"
        )
    shared = [i for i in range(len(table.images)) if sum(table.labels[n][i] is not None for n in table.labelers) >= 2]
    if not shared:
        raise InvalidInputError("no image was labeled by two labelers yet, so agreement cannot be measured")
    classes = sorted({label for row in table.labels.values() for label in row if label is not None})
    consensus = [_majority([table.labels[n][i] for n in table.labelers]) for i in range(len(table.images))]
    result = {
        "labelers": table.labelers,
        "images": len(table.images),
        "images_with_two_or_more_labels": len(shared),
        "alpha": _alpha(table, classes, None),
        "alpha_by_class": {name: _alpha(table, classes, name) for name in classes},
        "kappa_by_pair": [_kappa(table, first, second) for first, second in combinations(table.labelers, 2)],
        "by_labeler": [_quality(table, name) for name in table.labelers],
        "least_agreed": _least_agreed(table, consensus),
    }
    logger.info("agreement of %d labelers on %d images: alpha %s", len(table.labelers), len(shared), result["alpha"])
    return result


def _alpha(table: LabelTable, classes: list[str], one_class: str | None) -> float | None:
    """Return Krippendorff's alpha (nominal) over all classes, or for ``one_class`` against the rest."""
    rows = []
    for name in table.labelers:
        row = []
        for label in table.labels[name]:
            if label is None:
                row.append(np.nan)
            elif one_class is None:
                row.append(float(classes.index(label)))
            else:
                row.append(float(label == one_class))
        rows.append(row)
    data = np.array(rows, dtype=float)
    values = np.unique(data[~np.isnan(data)])
    if values.size < 2:
        return None
    return round(float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")), 6)


def _kappa(table: LabelTable, first: str, second: str) -> dict[str, Any]:
    both = [(a, b) for a, b in zip(table.labels[first], table.labels[second]) if a is not None and b is not None]
    kappa = None
    if both and len({label for pair in both for label in pair}) > 1:
        kappa = round(float(cohen_kappa_score([a for a, _ in both], [b for _, b in both])), 6)
    return {"labelers": [first, second], "images": len(both), "kappa": kappa}


def _majority(labels: list[str | None]) -> str | None:
    """Return the class most labelers gave, or None for no labels or a tie."""
    counts = Counter(label for label in labels if label is not None).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def _quality(table: LabelTable, name: str) -> dict[str, Any]:
    """Return one labeler's escape and overkill rates and confusion against the consensus."""
    others = [n for n in table.labelers if n != name]
    decided = table.decided or [None] * len(table.images)
    pairs = []
    for index, label in enumerate(table.labels[name]):
        reference = decided[index] or _majority([table.labels[n][index] for n in others])
        if label is not None and reference is not None:
            pairs.append((reference, label))
    defective = [(ref, got) for ref, got in pairs if ref != OK_CLASS]
    good = [(ref, got) for ref, got in pairs if ref == OK_CLASS]
    confusion = Counter(f"{ref} -> {got}" for ref, got in pairs)
    return {
        "labeler": name,
        "images_compared": len(pairs),
        "escape_rate": round(sum(got == OK_CLASS for _, got in defective) / len(defective), 6) if defective else None,
        "overkill_rate": round(sum(got != OK_CLASS for _, got in good) / len(good), 6) if good else None,
        "accuracy": round(sum(ref == got for ref, got in pairs) / len(pairs), 6) if pairs else None,
        "confusion": dict(sorted(confusion.items())),
    }


def _least_agreed(table: LabelTable, consensus: list[str | None]) -> list[dict[str, Any]]:
    """Return images labeled by two or more, least agreed first: the share of labels equal to the most common one."""
    rows = []
    for index, (image_id, path) in enumerate(table.images):
        labels = {n: table.labels[n][index] for n in table.labelers if table.labels[n][index] is not None}
        if len(labels) < 2:
            continue
        top = Counter(labels.values()).most_common(1)[0][1]
        rows.append({"image_id": image_id, "path": path, "agreement": round(top / len(labels), 6),
                     "consensus": consensus[index], "labels": labels})
    return sorted(rows, key=lambda row: (row["agreement"], row["image_id"]))
