"""Counts of what a reader found and rejected, for the import report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from defectlab.formats.records import OK_CLASS, ImportBatch, Problem

__all__ = ["BatchSummary", "summarize_batch"]


@dataclass(frozen=True)
class BatchSummary:
    """Counts of one ``ImportBatch``.

    Attributes:
        images: Number of images found.
        unlabeled: Images without any label (never counted as ok).
        ok: Images labeled explicitly as no defect.
        images_per_class: Class name to the number of images that carry it,
            as the image-level label or on at least one region; ``ok`` included.
        regions_per_kind: ``box``, ``polygon`` and ``mask`` to their counts.
        errors: Problems whose item was not imported, in the order found.
        warnings: Problems whose item was imported after a correction.
    """

    images: int
    unlabeled: int
    ok: int
    images_per_class: dict[str, int] = field(default_factory=dict)
    regions_per_kind: dict[str, int] = field(default_factory=dict)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def summarize_batch(batch: ImportBatch) -> BatchSummary:
    """Count the images, labels, regions and problems of a batch."""
    per_class: Counter[str] = Counter()
    per_kind: Counter[str] = Counter()
    for image in batch.images:
        names = {region.class_name for region in image.regions}
        if image.label is not None:
            names.add(image.label)
        per_class.update(names)
        per_kind.update(region.kind for region in image.regions)

    return BatchSummary(
        images=len(batch.images),
        unlabeled=sum(not image.labeled for image in batch.images),
        ok=sum(image.labeled and image.label == OK_CLASS for image in batch.images),
        images_per_class=dict(per_class.most_common()),
        regions_per_kind=dict(per_kind),
        errors=[problem for problem in batch.problems if problem.severity == "error"],
        warnings=[problem for problem in batch.problems if problem.severity == "warning"],
    )
