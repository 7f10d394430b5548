"""Choose training settings from the images themselves, so users need not touch a hyperparameter.

``plan_training`` reads per-image statistics (size, channels, bit depth, label,
split) and returns a ``TrainingPlan`` with the reason for each choice in plain
words and warnings about the data. A user may override a setting; each
overridable setting has a safe range (``SETTING_RANGES``), and a value outside it
raises ``InvalidInputError`` naming the setting, the value and the range.

Augmentations are limited to changes that cannot hide or remove a defect:
flips, 90-degree rotations (square inputs only) and intensity jitter of at most
10 % of the intensity window. Crops are never used, because a crop can cut a
small defect out of an image that is still labeled defective.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from defectlab.errors import InvalidInputError
from defectlab.images.prepare import STRETCH_CHOICES

__all__ = [
    "FEW_EXAMPLES",
    "OK_CLASS",
    "SETTING_RANGES",
    "TASKS",
    "UNUSED_SETTINGS",
    "Augmentations",
    "ImageStats",
    "TrainingPlan",
    "plan_training",
]

OK_CLASS = "ok"
"""Name of the no-defect class."""

TASKS = ("classification", "anomaly")
"""Task types the auto-tuner plans for."""

_CHOICE_SETTINGS: dict[str, tuple[str, ...]] = {
    "fine_tune": ("auto", "always", "never"),
    "head": ("patches", "global"),
    "stretch": STRETCH_CHOICES,
}
_BOOL_SETTINGS = ("horizontal_flip", "vertical_flip", "rotate_90")

SETTING_RANGES: dict[str, tuple[float, float]] = {
    "input_height": (64, 1024),
    "input_width": (64, 1024),
    "epochs": (1, 100),
    "batch_size": (1, 256),
    "learning_rate": (1e-5, 0.1),
    "fine_tune_blocks": (1, 5),
    "memory_bank_size": (500, 100_000),
    "calibration_fraction": (0.05, 0.5),
    "escape_cost": (1.0, 100.0),
    "brightness": (0.0, 0.1),
    "contrast": (0.0, 0.1),
    "seed": (0, 2**31 - 1),
}
"""Inclusive (min, max) of each numeric setting a user may override."""

UNUSED_SETTINGS: dict[str, frozenset[str]] = {
    "anomaly": frozenset({"epochs", "batch_size", "learning_rate", "fine_tune", "fine_tune_blocks", "head",
                          "class_weights", "augmentations"}),
    "classification": frozenset({"memory_bank_size", "calibration_fraction"}),
    "segmentation": frozenset({"augmentations", "epochs", "batch_size", "learning_rate", "fine_tune",
                               "fine_tune_blocks", "head", "class_weights", "memory_bank_size", "calibration_fraction"}),
}
UNUSED_SETTINGS["detection"] = UNUSED_SETTINGS["segmentation"]
"""Plan fields that each task's model does not read, which reports leave out.

A classification or anomaly override of one is rejected. Segmentation and
detection take only the settings listed in ``defectlab.training.run``.
"""

_INTEGER_SETTINGS = {"input_height", "input_width", "epochs", "batch_size", "fine_tune_blocks", "memory_bank_size", "seed"}

# Input sizes are multiples of the network's largest stride, 32.
_STRIDE = 32
_BASE_SIDE = 224
# Square classification input. The patch head scores 16 x 16-pixel patches; in 5-fold
# cross-validation on magnetic-tile train and dev images, 160 px gave an image AUROC of
# 0.994 and 8 escapes of 214 at the 0.5 threshold, against 0.991 and 14 at 224 px.
_CLASSIFICATION_SIDE = 160
# Largest input area for elongated images, about 3.3 times 224 x 224.
# NOTE: chosen from backbone timings (about 26 ms for 640 x 256 on 2 cores); the
# end-to-end prediction time at this size was not confirmed on an idle machine.
_MAX_AREA = 165_000
# Nearest-neighbour cost per image, in multiply-adds, that sizes the memory bank.
_SEARCH_BUDGET = 1.3e9
_FEATURE_DIM_ANOMALY = 304
_PATCH_STRIDE_ANOMALY = 16
FEW_EXAMPLES = 10
"""Training images of a class below which a plan warning calls its results untrustworthy."""


@dataclass(frozen=True)
class ImageStats:
    """What the auto-tuner needs to know about one image.

    Attributes:
        width: Width in pixels, as displayed.
        height: Height in pixels, as displayed.
        channels: 1 for grayscale, 3 for RGB.
        bit_depth: Effective bits per sample: 8, 10, 12, 14 or 16.
        label: Class name (``"ok"`` for no defect), or None when unlabeled.
        split: ``"train"``, ``"dev"``, ``"test"`` or None.
    """

    width: int
    height: int
    channels: int = 1
    bit_depth: int = 8
    label: str | None = None
    split: str | None = None


@dataclass(frozen=True)
class Augmentations:
    """Label-preserving changes applied to training images.

    Attributes:
        horizontal_flip: Mirror left-right.
        vertical_flip: Mirror top-bottom.
        rotate_90: Rotate by multiples of 90 degrees (square inputs only).
        brightness: Maximum shift of the windowed intensity, as a fraction of the
            0..1 window (0.05 shifts by at most 5 % of the window).
        contrast: Maximum relative change of contrast around mid-grey (0.05 scales
            by a factor in 0.95..1.05).
    """

    horizontal_flip: bool = True
    vertical_flip: bool = True
    rotate_90: bool = False
    brightness: float = 0.05
    contrast: float = 0.05


@dataclass(frozen=True)
class TrainingPlan:
    """Settings for one training run, with the reasons behind them.

    Attributes:
        task: ``"classification"`` or ``"anomaly"``.
        input_size: Network input ``(height, width)`` in pixels.
        augmentations: Label-preserving changes for training images.
        epochs: Passes over the training images of a classifier head (patch head or fine-tuning).
        batch_size: Images per optimization step.
        learning_rate: Peak learning rate of the fine-tuned layers.
        fine_tune: ``"auto"`` trains a linear head on frozen features and a
            fine-tuned model and keeps the better one on dev images; ``"always"``
            or ``"never"`` force one of them.
        fine_tune_blocks: Number of last network blocks that fine-tuning updates.
        head: Classification model: ``"patches"`` scores every patch and pools the
            scores (``defectlab.training.patches``); ``"global"`` classifies the
            pooled image feature, with a linear or fine-tuned head
            (``defectlab.training.classifier``).
        class_weights: Loss weight per class name; mean weight over the training
            images is 1.
        stretch: ``"auto"`` stretches each image's own intensity range to a fixed
            one when the training images' brightness varies widely;
            ``"always"`` or ``"never"`` force it (``defectlab.images.prepare``).
        memory_bank_size: Patch features kept by anomaly detection.
        calibration_fraction: Share of the good training images held out to set the
            anomaly threshold when no calibration images are given.
        escape_cost: Cost of one escape counted in overkills, used when a threshold
            is chosen on images with known labels.
        seed: Seed of every random choice, so equal inputs give equal models.
        reasons: One plain sentence per choice.
        warnings: Problems in the data that may make the model unreliable.
    """

    task: str
    input_size: tuple[int, int]
    augmentations: Augmentations = field(default_factory=Augmentations)
    epochs: int = 12
    batch_size: int = 32
    learning_rate: float = 3e-4
    fine_tune: str = "auto"
    head: str = "patches"
    fine_tune_blocks: int = 2
    class_weights: dict[str, float] = field(default_factory=dict)
    stretch: str = "auto"
    memory_bank_size: int = 10_000
    calibration_fraction: float = 0.15
    escape_cost: float = 5.0
    seed: int = 0
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as plain dicts, lists, strings and numbers."""
        data = asdict(self)
        data["input_size"] = list(self.input_size)
        data["reasons"] = list(self.reasons)
        data["warnings"] = list(self.warnings)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingPlan:
        """Rebuild a plan from the output of ``to_dict``.

        Raises:
            InvalidInputError: A key is unknown or a value has the wrong type.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"training plan keys {unknown} are unknown; known keys: {sorted(known)}")
        values = dict(data)
        try:
            values["input_size"] = (int(values["input_size"][0]), int(values["input_size"][1]))
            values["augmentations"] = Augmentations(**values.get("augmentations", {}))
        except (KeyError, IndexError, TypeError) as error:
            raise InvalidInputError(f"training plan {dict(data)!r} is invalid ({error}); pass TrainingPlan.to_dict() output") from error
        values["reasons"] = tuple(values.get("reasons", ()))
        values["warnings"] = tuple(values.get("warnings", ()))
        return cls(**values)


def plan_training(
    images: Sequence[ImageStats],
    task: str,
    overrides: Mapping[str, Any] | None = None,
) -> TrainingPlan:
    """Choose the training settings for a project's images.

    Args:
        images: One entry per image of the snapshot. Images with split ``"test"``
            are ignored; images with no split count as training images.
        task: ``"classification"`` or ``"anomaly"``.
        overrides: Settings chosen by the user, by name; see ``SETTING_RANGES`` and
            ``fine_tune`` and ``stretch`` (``"auto"``, ``"always"``, ``"never"``), ``horizontal_flip``,
            ``vertical_flip`` and ``rotate_90`` (booleans).

    Raises:
        InvalidInputError: The task is unknown, there are no images, or an
            override is unknown or outside its range.
    """
    if task not in TASKS:
        raise InvalidInputError(f"task {task!r} is invalid; the auto-tuner plans for {list(TASKS)}")
    usable = [stats for stats in images if stats.split != "test"]
    if not usable:
        raise InvalidInputError(
            f"none of the {len(images)} images can be used for training because all are in the test split; "
            "put some images in the train split"
        )
    checked = validate_overrides(overrides or {})
    _check_used(checked, task)

    reasons: list[str] = []
    warnings: list[str] = []
    input_size = _choose_input_size(usable, task, reasons)
    plan = TrainingPlan(task=task, input_size=input_size, seed=int(checked.get("seed", 0)))
    if task == "classification":
        plan = _plan_classification(plan, usable, reasons, warnings)
    else:
        plan = _plan_anomaly(plan, usable, reasons, warnings)
    _describe_intensity(usable, reasons)

    plan = _apply_overrides(plan, checked, reasons)
    return replace(plan, reasons=tuple(reasons), warnings=tuple(warnings))


def _check_used(overrides: Mapping[str, Any], task: str) -> None:
    """Raise ``InvalidInputError`` for an override that the task's model would ignore."""
    augmentation_names = {f.name for f in fields(Augmentations)}
    unused = sorted(name for name in overrides
                    if ("augmentations" if name in augmentation_names else name) in UNUSED_SETTINGS[task])
    if unused:
        raise InvalidInputError(
            f"setting {unused[0]!r} is not used by {task} models, so it would have no effect; remove it"
        )


def validate_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Check user overrides against ``SETTING_RANGES`` and return them converted.

    Raises:
        InvalidInputError: A setting is unknown, of the wrong type, or outside its
            range; the message names the setting, the value and what is allowed.
    """
    checked: dict[str, Any] = {}
    for name, value in overrides.items():
        if name in _CHOICE_SETTINGS:
            checked[name] = _check_choice(name, value)
        elif name in _BOOL_SETTINGS:
            checked[name] = _check_bool(name, value)
        elif name in SETTING_RANGES:
            checked[name] = _check_number(name, value)
        else:
            known = sorted([*SETTING_RANGES, *_CHOICE_SETTINGS, *_BOOL_SETTINGS])
            raise InvalidInputError(f"setting {name!r} is unknown; settings that can be overridden: {known}")
    return checked


def _check_choice(name: str, value: Any) -> str:
    allowed = _CHOICE_SETTINGS[name]
    if value not in allowed:
        raise InvalidInputError(f"setting {name!r} is {value!r}, which is invalid; allowed values: {', '.join(allowed)}")
    return str(value)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"setting {name!r} is {value!r}, which is invalid; use true or false")
    return value


def _check_number(name: str, value: Any) -> float | int:
    low, high = SETTING_RANGES[name]
    integer = name in _INTEGER_SETTINGS
    valid_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not valid_type or (not integer and not math.isfinite(value)):
        kind = "a whole number" if integer else "a number"
        raise InvalidInputError(f"setting {name!r} is {value!r}, which is invalid; use {kind} in the range {low:g} to {high:g}")
    if not low <= value <= high:
        raise InvalidInputError(
            f"setting {name!r} is {value:g}, outside its safe range {low:g} to {high:g}; choose a value in that range"
        )
    return int(value) if integer else float(value)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return float(ordered[middle]) if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2.0


def _round_to_stride(value: float) -> int:
    return int(max(_STRIDE * 2, _STRIDE * round(value / _STRIDE)))


def _choose_input_size(images: Sequence[ImageStats], task: str, reasons: list[str]) -> tuple[int, int]:
    """Pick (height, width): square for near-square images, the images' aspect ratio otherwise."""
    aspect = _median([stats.height / stats.width for stats in images])
    short_sides = [min(stats.width, stats.height) for stats in images]
    long_sides = [max(stats.width, stats.height) for stats in images]
    if min(short_sides) == max(long_sides):
        size_text = f"{min(short_sides)} x {min(short_sides)} px"
    else:
        size_text = f"{min(short_sides)} to {max(long_sides)} px a side"
    if 1 / 1.5 <= aspect <= 1.5:
        side = _CLASSIFICATION_SIDE if task == "classification" else _BASE_SIDE
        if max(long_sides) < side:
            effect = (f"the images are enlarged to the default square input of {side} x {side} px (set "
                      "input_height and input_width to keep their own size)")
        else:
            effect = f"a square input of {side} x {side} px keeps defects of a few pixels visible and prediction fast"
        reasons.append(f"Images are {size_text} with a median height/width ratio of {aspect:.2f}, so {effect}.")
        return side, side

    # Keep the short side at 224 px (or more when the area allows) and follow the aspect ratio.
    elongation = max(aspect, 1 / aspect)
    short = _round_to_stride(max(_BASE_SIDE, math.sqrt(_MAX_AREA / elongation)))
    long = _round_to_stride(min(short * elongation, _MAX_AREA / short))
    height, width = (long, short) if aspect > 1 else (short, long)
    reasons.append(
        f"Images are {size_text} and elongated (median height/width {aspect:.2f}), so the input is "
        f"{height} x {width} px (height x width): it keeps the aspect ratio, so thin defects are not squeezed."
    )
    return height, width


def _describe_intensity(images: Sequence[ImageStats], reasons: list[str]) -> None:
    depths = sorted({stats.bit_depth for stats in images})
    gray = all(stats.channels == 1 for stats in images)
    kind = "grayscale" if gray else "color"
    reasons.append(
        f"Images are {kind} with bit depth {', '.join(map(str, depths))}; the intensity window is fitted on the "
        "training images' 0.5 and 99.5 percentiles, so a narrow range (such as 12-bit data in 16-bit files) "
        "uses the full input range. If the training images' brightness varies widely, as with changing exposure, "
        "each image's own range is stretched instead; the decision is made when the images are read."
    )


def _training_labels(images: Sequence[ImageStats]) -> Counter[str]:
    return Counter(stats.label for stats in images if stats.split in (None, "train") and stats.label is not None)


def _plan_classification(
    plan: TrainingPlan, images: Sequence[ImageStats], reasons: list[str], warnings: list[str]
) -> TrainingPlan:
    counts = _training_labels(images)
    dev_counts = Counter(stats.label for stats in images if stats.split == "dev" and stats.label is not None)
    _warn_about_classes(counts, dev_counts, warnings)
    weights = _balanced_weights(counts)
    if weights:
        text = ", ".join(f"{name} {counts[name]} ({weights[name]:.2f})" for name in sorted(counts))
        reasons.append(
            f"Training images per class (loss weight): {text}; rarer classes weigh more, so the model does not "
            "learn to ignore them."
        )

    total = sum(counts.values())
    # The patch head trains on cached features in seconds per epoch, and dev loss
    # on magnetic-tile images kept falling until about epoch 30.
    epochs = 30
    square = plan.input_size[0] == plan.input_size[1]
    augmentations = Augmentations(rotate_90=square)
    reasons.append(
        f"{total} training images: every 16 x 16-pixel patch is scored for every class from frozen pretrained "
        "features, and one defective patch is enough to call the image defective, so small defects are not "
        "averaged away. Three heads train on flipped copies from different random starts, and each keeps its "
        "final epoch (set head=global for a classifier of the whole-image feature with fine-tuned last blocks)."
    )
    return replace(plan, class_weights=weights, epochs=epochs, augmentations=augmentations)


def _warn_about_classes(counts: Counter[str], dev_counts: Counter[str], warnings: list[str]) -> None:
    if OK_CLASS not in counts:
        warnings.append(f"No training image is labeled '{OK_CLASS}', so the model never learns what a good part looks like.")
    if len(counts) < 2:
        warnings.append(f"Training images have {len(counts)} class(es); classification needs at least two.")
    for name in sorted(set(dev_counts) - set(counts)):
        warnings.append(f"Class '{name}' has dev images but no training images; the model cannot predict it.")
    for name, count in sorted(counts.items()):
        if count < FEW_EXAMPLES:
            warnings.append(
                f"Class '{name}' has only {count} training image(s); add at least {FEW_EXAMPLES} "
                "so that its results can be trusted."
            )
    if counts and max(counts.values()) > 20 * min(counts.values()):
        most, least = counts.most_common()[0], counts.most_common()[-1]
        warnings.append(
            f"Classes are very imbalanced ({most[0]}: {most[1]}, {least[0]}: {least[1]} images); "
            "the rare class is weighted up, but more examples of it would help most."
        )
    if not dev_counts:
        warnings.append("No dev images: a stratified part of the training images is held out to choose the model.")


def _balanced_weights(counts: Counter[str]) -> dict[str, float]:
    """Weight each class by total / (classes x count), which gives every class the same total weight."""
    total = sum(counts.values())
    if not total:
        return {}
    return {name: round(total / (len(counts) * count), 4) for name, count in sorted(counts.items())}


def _plan_anomaly(plan: TrainingPlan, images: Sequence[ImageStats], reasons: list[str], warnings: list[str]) -> TrainingPlan:
    good = sum(1 for stats in images if stats.label == OK_CLASS and stats.split in (None, "train"))
    defective_dev = sum(1 for stats in images if stats.label not in (None, OK_CLASS) and stats.split == "dev")
    if good < 20:
        warnings.append(f"Only {good} good training image(s); anomaly detection needs at least 20, better 100 or more.")
    if defective_dev == 0:
        warnings.append(
            "No defective dev images: the threshold is set from good images only, just above the highest "
            "score among held-out good images, so subtle defects may escape."
        )

    height, width = plan.input_size
    patches = (height // _PATCH_STRIDE_ANOMALY) * (width // _PATCH_STRIDE_ANOMALY)
    size = int(min(20_000, max(1_000, _SEARCH_BUDGET / (patches * _FEATURE_DIM_ANOMALY))) // 500 * 500)
    reasons.append(
        f"{good} good training images: a memory bank of at most {size} patch features (chosen to cover their "
        f"patches evenly) keeps the search of one image's {patches} patches fast."
    )
    reasons.append("No augmentation for anomaly detection, so the model learns good parts exactly as the camera sees them.")
    return replace(plan, memory_bank_size=size, augmentations=Augmentations(False, False, False, 0.0, 0.0))


def _apply_overrides(plan: TrainingPlan, overrides: Mapping[str, Any], reasons: list[str]) -> TrainingPlan:
    augmentation_names = {f.name for f in fields(Augmentations)}
    changes = {name: value for name, value in overrides.items() if name not in augmentation_names}
    augmentation_changes = {name: value for name, value in overrides.items() if name in augmentation_names}
    height = changes.pop("input_height", plan.input_size[0])
    width = changes.pop("input_width", plan.input_size[1])
    if augmentation_changes.get("rotate_90") and height != width:
        raise InvalidInputError(
            f"setting 'rotate_90' is true but the input size {height} x {width} is not square; "
            "rotate by 90 degrees only with input_height equal to input_width"
        )

    plan = replace(
        plan,
        input_size=(int(height), int(width)),
        augmentations=replace(plan.augmentations, **augmentation_changes),
        **changes,
    )
    for name, value in sorted(overrides.items()):
        reasons.append(f"Setting '{name}' is {value!r} because the user chose it.")
    return plan
