"""A plain-language diagnosis of a trained model, from its loss curves, its data and its predictions.

Each rule looks at real numbers and returns findings that an inspector can
act on without knowing machine learning:

- ``find_thin_classes``: a class with fewer than ``MIN_IMAGES_PER_CLASS``
  labeled images, and about how many more to collect.
- ``find_overfitting``: dev loss rising after its minimum while train loss
  keeps falling.
- ``find_unpredicted_classes``: a class that has images in a split but that
  the model never predicts there.
- ``find_open_suspicious_labels``: labels that the data check flagged as
  suspicious and that are unchanged since.

``diagnose`` runs every rule whose input is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from defectlab.errors import InvalidInputError
from defectlab.formats.records import OK_CLASS
from defectlab.quality.check import MIN_IMAGES_PER_CLASS

__all__ = [
    "Finding",
    "MIN_RISE",
    "MIN_RISING_EPOCHS",
    "diagnose",
    "find_open_suspicious_labels",
    "find_overfitting",
    "find_thin_classes",
    "find_unpredicted_classes",
]

MIN_RISING_EPOCHS = 3
"""Epochs after the dev-loss minimum needed before a rise counts; one noisy epoch is not a trend."""

MIN_RISE = (0.10, 0.02)
"""A dev-loss rise counts when it exceeds both 10 % of the minimum and 0.02 in absolute terms.

Dev sets of tens of images make the dev loss jitter, and near zero a tiny
absolute change is a large relative one.
"""

_LISTED_PATHS = 3


@dataclass(frozen=True)
class Finding:
    """One statement of the diagnosis.

    Attributes:
        kind: ``thin_class``, ``overfitting``, ``unpredicted_class`` or ``suspicious_labels``.
        message: The statement in plain words, with the numbers behind it and what to do.
        details: The numbers behind the message, for scripts.
    """

    kind: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_thin_classes(counts: Mapping[str, Mapping[str, int]], *, task: str) -> list[Finding]:
    """Return a finding per class with fewer than ``MIN_IMAGES_PER_CLASS`` labeled images over all splits.

    Args:
        counts: Split name to class name to labeled images, as training reports them.
        task: The project's task type. An anomaly model learns from good images only,
            so there only ``ok`` is counted.
    """
    totals: dict[str, int] = {}
    for per_class in counts.values():
        for name, count in per_class.items():
            totals[name] = totals.get(name, 0) + int(count)
    names = [OK_CLASS] if task == "anomaly" else sorted(totals)

    findings = []
    for name in names:
        count = totals.get(name, 0)
        if count >= MIN_IMAGES_PER_CLASS:
            continue
        missing = MIN_IMAGES_PER_CLASS - count
        kind_of_image = "good images" if name == OK_CLASS else f"images of {name}"
        message = (f"Class {name} has only {count} labeled {'image' if count == 1 else 'images'}. "
                   f"Collect and label about {missing} more {kind_of_image}, so that it has at least "
                   f"{MIN_IMAGES_PER_CLASS} across train, dev and test.")
        findings.append(Finding("thin_class", message, {"class": name, "images": count, "collect": missing}))
    return findings


def find_overfitting(curves: Mapping[str, Sequence[float | None]]) -> list[Finding]:
    """Return a finding when dev loss rose after its minimum while train loss kept falling.

    The rise is measured from the lowest dev loss to the mean of the last
    ``MIN_RISING_EPOCHS`` dev losses, which must come after that minimum. It
    counts when it exceeds both parts of ``MIN_RISE``. Train loss must be lower
    over those last epochs than at the epoch of the dev minimum.

    Args:
        curves: Loss per epoch by curve name; ``train`` and ``dev`` are used.
            A None (a loss that was not finite) ends the search.
    """
    train, dev = list(curves.get("train") or []), list(curves.get("dev") or [])
    if len(dev) != len(train) or len(dev) < MIN_RISING_EPOCHS + 1 or None in dev or None in train:
        return []

    best = int(np.argmin(dev))
    if best > len(dev) - 1 - MIN_RISING_EPOCHS:
        return []
    late_dev = float(np.mean(dev[-MIN_RISING_EPOCHS:]))
    late_train = float(np.mean(train[-MIN_RISING_EPOCHS:]))
    rise = late_dev - dev[best]
    relative, absolute = MIN_RISE
    if rise <= max(relative * dev[best], absolute) or late_train >= train[best]:
        return []

    epoch, last = best + 1, len(dev)
    message = (f"Dev loss was lowest at epoch {epoch} ({dev[best]:.3f}) and rose to {late_dev:.3f} over the last "
               f"{MIN_RISING_EPOCHS} epochs, while train loss kept falling ({train[best]:.3f} to {late_train:.3f}). "
               "The model is learning the training images by heart instead of what makes a defect. Label more "
               f"varied images, or train again with {epoch} epochs (Advanced settings).")
    return [Finding("overfitting", message, {"best_epoch": epoch, "epochs": last, "best_dev_loss": dev[best],
                                             "late_dev_loss": late_dev, "late_train_loss": late_train})]


def find_unpredicted_classes(class_names: Sequence[str], confusion_matrix: Any, *, split: str) -> list[Finding]:
    """Return a finding per class that has images in ``split`` but that the model predicted for none of them.

    Args:
        class_names: Order of the matrix's rows and columns.
        confusion_matrix: ``(C, C)`` counts, rows true classes, columns predicted classes.
        split: Name of the split the matrix counts, for the message.

    Raises:
        InvalidInputError: The matrix is not square with one row per class.
    """
    matrix = np.asarray(confusion_matrix, dtype=int)
    if matrix.shape != (len(class_names), len(class_names)):
        raise InvalidInputError(f"the confusion matrix has shape {matrix.shape}, but {len(class_names)} classes were given; "
                         "pass a square matrix with one row and column per class")
    images = int(matrix.sum())

    findings = []
    for index, name in enumerate(class_names):
        labeled, predicted = int(matrix[index].sum()), int(matrix[:, index].sum())
        if labeled == 0 or predicted > 0:
            continue
        instead = {class_names[column]: int(count) for column, count in enumerate(matrix[index]) if count}
        called = ", ".join(f"{count} as {other}" for other, count in instead.items())
        message = (f"The model never predicted {name} on the {images} {split} images, though {labeled} of them "
                   f"{'is' if labeled == 1 else 'are'} labeled {name} (it called them: {called}). "
                   f"Label more images of {name}, and check that its labels agree with the defect book.")
        findings.append(Finding("unpredicted_class", message,
                                {"class": name, "split": split, "labeled": labeled, "predicted_instead": instead}))
    return findings


def find_open_suspicious_labels(flagged: Sequence[Mapping[str, Any]], current_labels: Mapping[int, str | None], *,
                                checked_at: str | None = None) -> list[Finding]:
    """Return one finding about labels the data check flagged that still have the label it flagged.

    Args:
        flagged: The data check's ``suspicious_label`` issues, each with ``image_id``, ``path``,
            ``label`` and ``suggested``.
        current_labels: Image id to its label now; an image missing here has left the project.
        checked_at: When the data check ran, for the message.
    """
    open_issues = [issue for issue in flagged
                   if issue.get("image_id") in current_labels and current_labels[issue["image_id"]] == issue["label"]]
    if not open_issues:
        return []

    listed = "; ".join(f"{issue['path']} ({_flagged_words(issue)})" for issue in open_issues[:_LISTED_PATHS])
    more = f" and {len(open_issues) - _LISTED_PATHS} more" if len(open_issues) > _LISTED_PATHS else ""
    when = f" of {checked_at.replace('T', ' ')[:16]} UTC" if checked_at else ""
    count = len(open_issues)
    message = (f"The data check{when} flagged {count} {'label' if count == 1 else 'labels'} as suspicious that "
               f"{'is' if count == 1 else 'are'} still unchanged: {listed}{more}. A wrong label teaches the model "
               "the wrong thing; open these images and relabel them or confirm the label.")
    return [Finding("suspicious_labels", message,
                    {"image_ids": [int(issue["image_id"]) for issue in open_issues]})]


def _flagged_words(issue: Mapping[str, Any]) -> str:
    """Return what the check flagged: the image's class, or for a region the problem and what was given there."""
    if "problem" in issue:
        # NOTE: a region issue stays open while the image's class is unchanged, even after its box is redrawn.
        return f"{issue['problem'].replace('_', ' ')}: {issue['given']} given, {issue['suggested']} suggested"
    return f"labeled {issue['label']}, looks like {issue['suggested']}"


def diagnose(*, task: str, counts: Mapping[str, Mapping[str, int]],
             loss_curves: Mapping[str, Sequence[float | None]] | None = None,
             predictions: tuple[Sequence[str], Any, str] | None = None,
             suspicious: tuple[Sequence[Mapping[str, Any]], Mapping[int, str | None], str | None] | None = None,
             ) -> list[Finding]:
    """Run every rule whose input is given and return their findings, in the order of the module's list.

    Args:
        task: The project's task type.
        counts: Split name to class name to labeled images.
        loss_curves: Loss per epoch by curve name.
        predictions: ``(class_names, confusion_matrix, split)`` of the model on one split.
        suspicious: ``(flagged, current_labels, checked_at)`` as ``find_open_suspicious_labels`` takes them.
    """
    findings = find_thin_classes(counts, task=task)
    findings += find_overfitting(loss_curves or {})
    if predictions is not None:
        class_names, matrix, split = predictions
        findings += find_unpredicted_classes(class_names, matrix, split=split)
    if suspicious is not None:
        flagged, current, checked_at = suspicious
        findings += find_open_suspicious_labels(flagged, current, checked_at=checked_at)
    return findings
