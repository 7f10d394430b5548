"""Loss curves: the losses of each epoch, reported while a model trains and stored with it.

Trainers keep one history entry per epoch, such as ``{"epoch": 3,
"train_loss": 0.41, "dev_loss": 0.52}``. A curve is one loss over the epochs,
named without the ``_loss`` suffix: ``train`` and ``dev`` for classifiers,
``train`` for segmentation models, ``background`` and ``projection`` (the two
parts of the training loss) for box detectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

__all__ = ["EpochCallback", "append_epoch", "curves_from_history", "standard_curves"]

EpochCallback = Callable[[Mapping[str, float]], None]
"""Called with an epoch's history entry once the epoch ends."""

_SIGNIFICANT_DIGITS = 4


def append_epoch(curves: dict[str, list[float | None]], entry: Mapping[str, float]) -> None:
    """Append the losses of one history entry to ``curves``, in place."""
    for key, value in entry.items():
        if key.endswith("_loss"):
            curves.setdefault(key.removesuffix("_loss"), []).append(_rounded(value))


def curves_from_history(history: Sequence[Mapping[str, float]]) -> dict[str, list[float | None]]:
    """Return one list per loss from one history entry per epoch, epoch 1 first."""
    curves: dict[str, list[float | None]] = {}
    for entry in history:
        append_epoch(curves, entry)
    return curves


def standard_curves(stored: Mapping[str, Sequence[float | None]] | None) -> dict[str, list[float | None]]:
    """Return a model artifact's ``loss_history`` with curve names without ``_loss``, rounded, NaN as None.

    Curves that are not losses (such as ``dev_accuracy``) and curves without
    one finite value are left out.
    """
    curves: dict[str, list[float | None]] = {}
    for name, values in (stored or {}).items():
        if "accuracy" in name:
            continue
        rounded = [_rounded(value) for value in values]
        if any(value is not None for value in rounded):
            curves[name.removesuffix("_loss")] = rounded
    return curves


def _rounded(value: float | None) -> float | None:
    """Return the value with four significant digits, or None when it is missing or not finite (JSON has no NaN)."""
    if value is None or not math.isfinite(float(value)):
        return None
    return float(f"{float(value):.{_SIGNIFICANT_DIGITS}g}")
