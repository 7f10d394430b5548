"""Measure a model on a labelled test set, in inspectors' terms.

``evaluate_predictions`` looks at the same predictions in two ways:

* Defect vs ok. Every defect class counts as defective. An escape is a
  defective image called ``ok``, and an overkill is a good image called
  defective. Escape rate = escapes / defective images, overkill rate =
  overkills / good images. AUROC and average precision rank the defect
  scores of defective images against those of good ones.
* Per class. Precision, recall, F1 and support for each class, the confusion
  matrix and, when class probabilities are given, one-vs-rest AUROC.

A metric that the test set cannot measure is ``None``. Examples are an escape
rate without defective images, or an AUROC with only one kind of image. For
the defect-vs-ok metrics, ``Evaluation.undefined`` maps the field name to a
sentence that gives the reason, and the report shows that sentence.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from defectlab.errors import InvalidInputError

__all__ = ["ClassMetrics", "Curves", "Evaluation", "curves", "evaluate_predictions"]

_MAX_LISTED = 5
"""Offending rows named in one error message before the rest is counted."""


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall, F1, support and AUROC of one class.

    scikit-learn's ``zero_division=0`` would report 0 where a metric has no
    denominator. A 0 there reads as "always wrong", so these fields are
    ``None`` instead.

    Attributes:
        name: Class name.
        support: Test images whose true label is this class.
        predicted: Test images predicted as this class.
        precision: In [0, 1]. None when no image was predicted as this class.
        recall: In [0, 1]. None when ``support`` is 0.
        f1: In [0, 1]. None when ``support`` and ``predicted`` are both 0.
        auroc: One-vs-rest AUROC of this class's probability, in [0, 1].
            None without probabilities, or when the test set contains no
            image of this class or only images of it.
    """

    name: str
    support: int
    predicted: int
    precision: float | None
    recall: float | None
    f1: float | None
    auroc: float | None


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one model on one test set.

    Attributes:
        class_names: Class order of ``per_class`` and ``confusion_matrix``.
        ok_class: Name of the no-defect class.
        threshold: Defect score above which the predictions called an image
            defective. It is recorded here, not applied.
        images: Test images.
        defective: Test images whose true label is a defect class.
        good: Test images whose true label is ``ok_class``.
        escapes: Defective images predicted as ``ok_class``.
        escape_rate: ``escapes / defective`` in [0, 1]. None without
            defective images.
        overkills: Good images predicted as a defect class.
        overkill_rate: ``overkills / good`` in [0, 1]. None without good
            images.
        wrong_class: Defective images rejected under another defect class.
        accuracy: Share of images whose predicted class is the true class.
        per_class: One entry per class, in ``class_names`` order.
        confusion_matrix: ``(C, C)`` counts; rows are true classes and
            columns predicted classes, both in ``class_names`` order.
        auroc: AUROC of the defect scores, defective vs good. None unless
            both kinds of image are present.
        average_precision: Average precision of the defect scores with
            defective as the positive kind. None unless both kinds are
            present.
        error_indices: Indices of misclassified images, worst first:
            escapes by rising score, then overkills by falling score, then
            wrong-class errors (see ``evaluate_predictions``).
        undefined: Field name to the reason it is None, for ``escape_rate``,
            ``overkill_rate``, ``auroc`` and ``average_precision``.
    """

    class_names: list[str]
    ok_class: str
    threshold: float
    images: int
    defective: int
    good: int
    escapes: int
    escape_rate: float | None
    overkills: int
    overkill_rate: float | None
    wrong_class: int
    accuracy: float
    per_class: list[ClassMetrics]
    confusion_matrix: list[list[int]]
    auroc: float | None
    average_precision: float | None
    error_indices: list[int]
    undefined: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """Return the metrics as JSON-ready lists, dicts, str, int, float and None."""
        return asdict(self)


@dataclass(frozen=True)
class Curves:
    """Precision-recall and ROC curves of defect scores, defective as positive.

    Attributes:
        precision: ``(K + 1,)`` precision at each threshold, ending at 1.
        recall: ``(K + 1,)`` recall (1 - escape rate), falling, ending at 0.
        pr_thresholds: ``(K,)`` rising score thresholds of the PR curve.
        false_positive_rate: ``(M,)`` overkill rate at each ROC threshold.
        true_positive_rate: ``(M,)`` recall at each ROC threshold.
        roc_thresholds: ``(M,)`` falling score thresholds. The first is
            ``inf``, where nothing is called defective.
    """

    precision: np.ndarray
    recall: np.ndarray
    pr_thresholds: np.ndarray
    false_positive_rate: np.ndarray
    true_positive_rate: np.ndarray
    roc_thresholds: np.ndarray


def evaluate_predictions(
    *,
    class_names: list[str],
    true_labels: list[str],
    pred_labels: list[str],
    scores: np.ndarray,
    threshold: float,
    ok_class: str = "ok",
    probabilities: np.ndarray | None = None,
) -> Evaluation:
    """Compute escapes, overkills, per-class metrics and AUROC for a test set.

    Wrong-class errors come last in ``error_indices``. They are ordered by the
    probability margin of the predicted over the true class, largest first,
    when ``probabilities`` is given, and by index otherwise. Ties keep index
    order.

    Args:
        class_names: All classes of the model, ``ok_class`` included, unique.
        true_labels: ``(N,)`` true class of each test image, N >= 1.
        pred_labels: ``(N,)`` predicted class of each image, with the
            threshold already applied.
        scores: ``(N,)`` finite defect score of each image, higher meaning
            more likely defective: ``1 - P(ok)`` for classification, the
            anomaly score for anomaly detection.
        threshold: Threshold that produced ``pred_labels``.
        ok_class: Name of the no-defect class.
        probabilities: Optional ``(N, C)`` finite class probabilities, columns
            in ``class_names`` order, for per-class AUROC.

    Returns:
        The metrics. See ``Evaluation`` for the fields and when each is None.

    Raises:
        InvalidInputError: When the lengths or shapes disagree, a label is
            not in ``class_names``, ``ok_class`` is missing from it, or a
            score, probability or the threshold is not finite.
    """
    true, pred = _check_labels(class_names, true_labels, pred_labels, ok_class)
    score_array = _check_scores(scores, len(true))
    threshold = _check_threshold(threshold)
    probability_array = _check_probabilities(probabilities, len(true), len(class_names))

    true_is_defect = true != ok_class
    pred_is_defect = pred != ok_class
    counts = _count_defect_vs_ok(true_is_defect, pred_is_defect, true != pred)
    auroc, average_precision, ranking_undefined = _rank_defect_scores(true_is_defect, score_array)
    per_class = _per_class_metrics(class_names, true, pred, probability_array)
    matrix = _confusion_matrix(true, pred, class_names)
    errors = _order_errors(true, pred, score_array, ok_class, class_names, probability_array)

    return Evaluation(
        class_names=list(class_names),
        ok_class=ok_class,
        threshold=threshold,
        accuracy=float(accuracy_score(true, pred)),
        per_class=per_class,
        confusion_matrix=matrix.tolist(),
        auroc=auroc,
        average_precision=average_precision,
        error_indices=errors,
        undefined={**_undefined_rates(counts), **ranking_undefined},
        **counts,
    )


def curves(true_is_defect: np.ndarray, scores: np.ndarray) -> Curves:
    """Compute the precision-recall and ROC curves of defect scores.

    Args:
        true_is_defect: ``(N,)`` bool, True for defective images.
        scores: ``(N,)`` finite defect scores, higher meaning more likely
            defective.

    Returns:
        Both curves, with defective as the positive kind.

    Raises:
        InvalidInputError: When the shapes disagree, a score is not finite,
            or the images are not a mix of good and defective ones.
    """
    is_defect = np.asarray(true_is_defect, dtype=bool)
    if is_defect.ndim != 1:
        raise InvalidInputError(
            f"true_is_defect must be one-dimensional, got shape {is_defect.shape}; pass one bool per image."
        )
    score_array = _check_scores(scores, len(is_defect))
    defective = int(is_defect.sum())
    if defective in (0, len(is_defect)):
        raise InvalidInputError(
            f"PR and ROC curves need both good and defective images, got {defective} defective "
            f"of {len(is_defect)}; add images of the missing kind to the evaluated split."
        )

    precision, recall, pr_thresholds = precision_recall_curve(is_defect, score_array)
    false_positive_rate, true_positive_rate, roc_thresholds = roc_curve(is_defect, score_array)

    return Curves(
        precision=precision,
        recall=recall,
        pr_thresholds=pr_thresholds,
        false_positive_rate=false_positive_rate,
        true_positive_rate=true_positive_rate,
        roc_thresholds=roc_thresholds,
    )


def _check_labels(
    class_names: list[str], true_labels: Sequence[str], pred_labels: Sequence[str], ok_class: str
) -> tuple[np.ndarray, np.ndarray]:
    if not class_names or len(set(class_names)) != len(class_names):
        raise InvalidInputError(
            f"class_names must be a non-empty list of unique names, got {class_names!r}; remove the duplicates."
        )
    if ok_class not in class_names:
        raise InvalidInputError(
            f"ok_class {ok_class!r} is not in class_names {class_names!r}; "
            "add it, or pass the name your project uses for the no-defect class."
        )
    if len(true_labels) == 0:
        raise InvalidInputError("true_labels is empty; evaluate on at least one labelled image.")
    if len(pred_labels) != len(true_labels):
        raise InvalidInputError(
            f"pred_labels has {len(pred_labels)} entries but true_labels has {len(true_labels)}; "
            "pass one prediction per test image, in the same order."
        )
    _check_known("true_labels", true_labels, class_names)
    _check_known("pred_labels", pred_labels, class_names)

    return np.asarray(true_labels, dtype=object), np.asarray(pred_labels, dtype=object)


def _check_known(name: str, labels: Sequence[str], class_names: list[str]) -> None:
    known = set(class_names)
    unknown = [index for index, label in enumerate(labels) if label not in known]
    if not unknown:
        return

    listed = ", ".join(f"{name}[{index}]={labels[index]!r}" for index in unknown[:_MAX_LISTED])
    more = f" and {len(unknown) - _MAX_LISTED} more" if len(unknown) > _MAX_LISTED else ""
    raise InvalidInputError(
        f"{name} contains labels that are not in class_names {class_names!r}: {listed}{more}. "
        "Fix the labels, or add the missing classes to class_names."
    )


def _check_scores(scores: np.ndarray, images: int) -> np.ndarray:
    array = np.asarray(scores, dtype=np.float64)
    if array.shape != (images,):
        raise InvalidInputError(
            f"scores must have shape ({images},), one defect score per image, got {array.shape}."
        )
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        listed = ", ".join(f"scores[{index}]={array[index]}" for index in bad[:_MAX_LISTED])
        raise InvalidInputError(
            f"scores must be finite, got {listed} ({bad.size} in all); "
            "check the model output for NaN or infinite values."
        )
    return array


def _check_threshold(threshold: float) -> float:
    value = float(threshold)
    if not np.isfinite(value):
        raise InvalidInputError(f"threshold must be a finite number, got {threshold!r}.")
    return value


def _check_probabilities(probabilities: np.ndarray | None, images: int, classes: int) -> np.ndarray | None:
    if probabilities is None:
        return None

    array = np.asarray(probabilities, dtype=np.float64)
    if array.shape != (images, classes):
        raise InvalidInputError(
            f"probabilities must have shape ({images}, {classes}), one row per image and one "
            f"column per class in class_names order, got {array.shape}."
        )
    if not np.isfinite(array).all():
        rows = np.flatnonzero(~np.isfinite(array).all(axis=1))
        raise InvalidInputError(
            f"probabilities must be finite, but rows {rows[:_MAX_LISTED].tolist()} are not "
            f"({rows.size} rows in all); check the model output for NaN or infinite values."
        )
    return array


def _count_defect_vs_ok(
    true_is_defect: np.ndarray, pred_is_defect: np.ndarray, is_wrong: np.ndarray
) -> dict[str, Any]:
    defective = int(true_is_defect.sum())
    good = int((~true_is_defect).sum())
    escapes = int((true_is_defect & ~pred_is_defect).sum())
    overkills = int((~true_is_defect & pred_is_defect).sum())

    return {
        "images": int(true_is_defect.size),
        "defective": defective,
        "good": good,
        "escapes": escapes,
        "escape_rate": escapes / defective if defective else None,
        "overkills": overkills,
        "overkill_rate": overkills / good if good else None,
        "wrong_class": int((true_is_defect & pred_is_defect & is_wrong).sum()),
    }


def _undefined_rates(counts: dict[str, Any]) -> dict[str, str]:
    undefined = {}
    if counts["defective"] == 0:
        undefined["escape_rate"] = "There are no defective images among those evaluated, so no escape could happen."
    if counts["good"] == 0:
        undefined["overkill_rate"] = "There are no good images among those evaluated, so no overkill could happen."
    return undefined


def _rank_defect_scores(
    true_is_defect: np.ndarray, scores: np.ndarray
) -> tuple[float | None, float | None, dict[str, str]]:
    defective = int(true_is_defect.sum())
    if 0 < defective < true_is_defect.size:
        auroc = float(roc_auc_score(true_is_defect, scores))
        average_precision = float(average_precision_score(true_is_defect, scores))
        return auroc, average_precision, {}

    missing = "defective" if defective == 0 else "good"
    reason = (
        f"There are no {missing} images among those evaluated. Ranking defective against good images "
        "needs both kinds."
    )
    return None, None, {"auroc": reason, "average_precision": reason}


def _per_class_metrics(
    class_names: list[str], true: np.ndarray, pred: np.ndarray, probabilities: np.ndarray | None
) -> list[ClassMetrics]:
    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=class_names, zero_division=0
    )
    rows = []
    for column, name in enumerate(class_names):
        predicted = int((pred == name).sum())
        rows.append(
            ClassMetrics(
                name=name,
                support=int(support[column]),
                predicted=predicted,
                precision=float(precision[column]) if predicted else None,
                recall=float(recall[column]) if support[column] else None,
                f1=float(f1[column]) if predicted or support[column] else None,
                auroc=_one_vs_rest_auroc(true == name, probabilities, column),
            )
        )
    return rows


def _confusion_matrix(true: np.ndarray, pred: np.ndarray, class_names: list[str]) -> np.ndarray:
    with warnings.catch_warnings():
        # scikit-learn 1.9 warns on any 1 x 1 matrix, even with labels given.
        # A project with one class has exactly that shape, so the warning is noise.
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        return confusion_matrix(true, pred, labels=class_names)


def _one_vs_rest_auroc(is_class: np.ndarray, probabilities: np.ndarray | None, column: int) -> float | None:
    if probabilities is None or is_class.all() or not is_class.any():
        return None
    return float(roc_auc_score(is_class, probabilities[:, column]))


def _order_errors(
    true: np.ndarray,
    pred: np.ndarray,
    scores: np.ndarray,
    ok_class: str,
    class_names: list[str],
    probabilities: np.ndarray | None,
) -> list[int]:
    true_is_defect = true != ok_class
    pred_is_defect = pred != ok_class
    escapes = np.flatnonzero(true_is_defect & ~pred_is_defect)
    overkills = np.flatnonzero(~true_is_defect & pred_is_defect)
    wrong_class = np.flatnonzero(true_is_defect & pred_is_defect & (true != pred))

    # An escape with a low score and an overkill with a high score are the
    # confident mistakes, so an inspector should see them first.
    escapes = escapes[np.argsort(scores[escapes], kind="stable")]
    overkills = overkills[np.argsort(-scores[overkills], kind="stable")]
    if probabilities is not None:
        wrong_class = _order_by_margin(wrong_class, true, pred, class_names, probabilities)

    return [int(index) for index in np.concatenate([escapes, overkills, wrong_class])]


def _order_by_margin(
    indices: np.ndarray, true: np.ndarray, pred: np.ndarray, class_names: list[str], probabilities: np.ndarray
) -> np.ndarray:
    column = {name: position for position, name in enumerate(class_names)}
    true_columns = np.array([column[true[index]] for index in indices], dtype=np.int64)
    pred_columns = np.array([column[pred[index]] for index in indices], dtype=np.int64)
    margins = probabilities[indices, pred_columns] - probabilities[indices, true_columns]
    return indices[np.argsort(-margins, kind="stable")]
