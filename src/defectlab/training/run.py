"""Train a model from a project: snapshot, splits, auto-tuned settings, fit, store.

The workspace changes only at the end, in one transaction that assigns the
splits chosen here, writes the snapshot and registers the model. A run that
fails or is killed before that leaves the project as it was; its blobs are
unreferenced and cost only disk space.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from defectlab.data.pixels import StoredMasks, StoredPixels
from defectlab.data.snapshot import SnapshotImage, freeze_image, take_snapshot
from defectlab.errors import InvalidInputError, TrainingError
from defectlab.formats.records import OK_CLASS
from defectlab.images.prepare import BRIGHTNESS_SPREAD
from defectlab.models.artifact import dump_artifact, new_artifact
from defectlab.training.autotune import FEW_EXAMPLES, ImageStats, TrainingPlan, plan_training
from defectlab.training.curves import EpochCallback, standard_curves
from defectlab.training.splits import assign_splits
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, Image, Model

__all__ = ["TrainingResult", "train_project", "TRAINABLE_TASKS"]

logger = logging.getLogger(__name__)

TRAINABLE_TASKS = ("classification", "anomaly", "segmentation", "detection")
REGION_TASKS = ("segmentation", "detection")
_REGION_SETTINGS = {"input_height", "input_width", "seed", "epochs"}
Progress = Callable[[int, int, str], None]


@dataclass
class TrainingResult:
    """A finished training run: the new model and what was chosen for it.

    ``later_reasons`` are the plan's reasons added while fitting (the input size
    chosen on dev images, the stretch), which ``on_plan`` could not show yet.
    """

    model_id: int
    project: str
    task: str
    class_names: list[str]
    threshold: float
    plan: TrainingPlan
    counts: dict[str, dict[str, int]]
    seconds: float
    loss_curves: dict[str, list[float | None]]
    later_reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "project": self.project,
            "task": self.task,
            "class_names": self.class_names,
            "threshold": self.threshold,
            "counts": self.counts,
            "seconds": round(self.seconds, 2),
            "settings": self.plan.to_dict(),
            "loss_curves": self.loss_curves,
        }


def train_project(workspace: Workspace, project_name: str, *, overrides: dict[str, Any] | None = None,
                  progress: Progress | None = None,
                  on_plan: Callable[[TrainingPlan], None] | None = None,
                  on_epoch: EpochCallback | None = None) -> TrainingResult:
    """Train the project's model on its labeled images; return the registered model.

    Args:
        overrides: Settings chosen by the user, checked against their safe ranges.
        progress: Called as ``progress(done, total, message)``.
        on_plan: Called with the auto-tuner's plan before fitting starts.
        on_epoch: Called with each epoch's losses (see ``defectlab.training.curves``); anomaly models have no
            epochs.

    Raises:
        TrainingError: The task cannot be trained yet, or the labels cannot train it.
        InvalidInputError: An override is unknown or outside its safe range.
    """
    started = time.monotonic()
    task, images = _frozen_images(workspace, project_name)
    assigned = assign_splits(images, task=task, near=_near_duplicate_groups(workspace, images, task))
    images = [replace(image, split=assigned.get(image.image_id, image.split)) for image in images]
    labeled = [image for image in images if image.label is not None]
    _check_labels(labeled, task, project_name)

    if task in REGION_TASKS:
        return _train_regions(workspace, project_name, task, labeled, assigned, overrides, progress, on_plan, started,
                              on_epoch)
    plan = plan_training([_stats(image) for image in labeled], task, overrides)
    for warning in plan.warnings:
        logger.info("plan warning: %s", warning)
    if task == "anomaly" and _can_rank_scales(labeled) and not {"input_height", "input_width"} & set(overrides or {}):
        plan = _announce_scales(plan)
    if on_plan is not None:
        on_plan(plan)
    announced = set(plan.reasons)

    search_scale = not {"input_height", "input_width"} & set(overrides or {})
    fitted, plan = _fit(workspace, task, labeled, plan, progress, search_scale=search_scale, on_epoch=on_epoch)
    plan = _explain_stretch(plan, fitted["preprocessing"])
    model_id = _register(workspace, project_name, assigned, plan, fitted)
    seconds = time.monotonic() - started
    logger.info("trained model %d of %s in %.1f s", model_id, project_name, seconds)
    return TrainingResult(model_id, project_name, task, fitted["class_names"], fitted["threshold"], plan,
                          _counts(labeled), seconds, standard_curves(fitted["loss_history"]),
                          tuple(reason for reason in plan.reasons if reason not in announced))


def _explain_stretch(plan: TrainingPlan, preprocessing: dict[str, Any]) -> TrainingPlan:
    """Add the reason for stretching each image's intensities when training chose to."""
    if not preprocessing.get("stretch"):
        return plan
    if plan.stretch == "always":
        cause = "the user chose it"
    else:
        cause = (f"the training images' brightness varies widely (bright images' median intensity more than "
                 f"{BRIGHTNESS_SPREAD:g} times dark images'), as with changing exposure")
    reason = (f"Each image's own intensity range (1st to 99th percentile) is stretched to the same input range "
              f"because {cause}. Parts photographed darker or brighter then look alike to the model. If a part "
              "too dark or too bright as a whole is itself a defect, train with --set stretch=never.")
    return replace(plan, reasons=(*plan.reasons, reason))


def _train_regions(workspace: Workspace, project_name: str, task: str, labeled: list[SnapshotImage],
                   assigned: dict[int, str], overrides: dict[str, Any] | None, progress: Progress | None,
                   on_plan: Callable[[TrainingPlan], None] | None, started: float,
                   on_epoch: EpochCallback | None = None) -> TrainingResult:
    from defectlab.book import decision_rules
    from defectlab.training.autotune import validate_overrides
    from defectlab.training.region_models import fit_detection, fit_segmentation

    checked = validate_overrides(overrides or {})
    unused = sorted(set(checked) - _REGION_SETTINGS)
    if unused:
        raise InvalidInputError(f"setting {unused[0]!r} is not used by {task} models; they take "
                                f"{', '.join(sorted(_REGION_SETTINGS))}")
    size = (int(checked.get("input_height", 0)), int(checked.get("input_width", 0)))
    model_kind = "a pixel-mask model" if task == "segmentation" else "a box detector"
    plan = TrainingPlan(task=task, input_size=size if all(size) else (0, 0), seed=int(checked.get("seed", 0)),
                        epochs=int(checked.get("epochs", 0)),
                        reasons=(f"A {task} project trains {model_kind} on the frozen pretrained backbone's "
                                 "features, with a light trainable head.",))
    train = [image for image in labeled if image.split == "train"]
    plan = replace(plan, warnings=_few_region_warnings(train))
    for warning in plan.warnings:
        logger.info("plan warning: %s", warning)
    if on_plan is not None:
        on_plan(plan)
    rules = decision_rules(workspace, project_name)
    dev = [image for image in labeled if image.split == "dev"]
    fit = fit_segmentation if task == "segmentation" else fit_detection
    fitted, plan = fit(workspace, train, dev, plan, rules, progress, on_epoch)
    model_id = _register(workspace, project_name, assigned, plan, fitted)
    seconds = time.monotonic() - started
    logger.info("trained model %d of %s in %.1f s", model_id, project_name, seconds)
    return TrainingResult(model_id, project_name, task, fitted["class_names"], fitted["threshold"], plan,
                          _counts(labeled), seconds, standard_curves(fitted["loss_history"]))


def _few_region_warnings(train: list[SnapshotImage]) -> tuple[str, ...]:
    """Return a warning for each defect class labeled on fewer than ``FEW_EXAMPLES`` training images."""
    counts = Counter(name for image in train for name in {region["class"] for region in image.regions})
    warnings = []
    for name, count in sorted(counts.items()):
        if count < FEW_EXAMPLES:
            warnings.append(f"Class '{name}' has regions on only {count} training image(s); add at least "
                            f"{FEW_EXAMPLES} so that its results can be trusted.")
    return tuple(warnings)


def _frozen_images(workspace: Workspace, project_name: str) -> tuple[str, list[SnapshotImage]]:
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        if project.task not in TRAINABLE_TASKS:
            raise TrainingError(
                f"project {project_name!r} is a {project.task} project; this version trains "
                f"{' and '.join(TRAINABLE_TASKS)} projects only (its images and labels are kept)"
            )
        rows = session.scalars(
            select(Image).where(Image.project_id == project.id).order_by(Image.path)
            .options(selectinload(Image.annotations).selectinload(Annotation.defect_class))
        ).all()
        return project.task, [freeze_image(row) for row in rows]


def _check_labels(labeled: list[SnapshotImage], task: str, project_name: str) -> None:
    training = Counter(image.label for image in labeled if image.split == "train")
    if task == "anomaly" and training[OK_CLASS] < 2:
        raise TrainingError(
            f"project {project_name!r} has {training[OK_CLASS]} good ('ok') training images; an anomaly model "
            "learns from good images only, so import at least 10 images labeled ok"
        )
    if task in REGION_TASKS and not any(image.regions for image in labeled if image.split == "train"):
        raise TrainingError(
            f"project {project_name!r} has no training image with a labeled defect region; a {task} model "
            "learns from masks, polygons or boxes, so label the defects of some images"
        )
    if task == "classification" and len(training) < 2:
        raise TrainingError(
            f"project {project_name!r} has training images of {len(training)} class(es) ({dict(training)}); "
            "a classifier needs labeled images of at least two classes, such as 'ok' and one defect class"
        )


def _stats(image: SnapshotImage) -> ImageStats:
    return ImageStats(width=image.width, height=image.height, channels=image.channels,
                      bit_depth=image.bit_depth, label=image.label, split=image.split)


def _pixels(workspace: Workspace, images: list[SnapshotImage]) -> StoredPixels:
    return StoredPixels(workspace.blobs, [image.sha256 for image in images], [image.path for image in images])


def _fit(workspace: Workspace, task: str, labeled: list[SnapshotImage], plan: TrainingPlan,
         progress: Progress | None, *, search_scale: bool,
         on_epoch: EpochCallback | None = None) -> tuple[dict[str, Any], TrainingPlan]:
    train = [image for image in labeled if image.split == "train"]
    dev = [image for image in labeled if image.split == "dev"]
    if task == "anomaly":
        return _fit_anomaly(workspace, train, dev, plan, progress, search_scale=search_scale)
    return _fit_classifier(workspace, train, dev, plan, progress, on_epoch), plan


def _fit_anomaly(workspace: Workspace, train: list[SnapshotImage], dev: list[SnapshotImage], plan: TrainingPlan,
                 progress: Progress | None, *, search_scale: bool) -> tuple[dict[str, Any], TrainingPlan]:
    from defectlab.training.anomaly import train_anomaly_detector

    good = [image for image in train if image.label == OK_CLASS]
    dev_labels = [int(image.label != OK_CLASS) for image in dev]
    candidates = _scaled_plans(plan) if search_scale and 0 < sum(dev_labels) < len(dev_labels) else [plan]
    trained = []
    for candidate in candidates:
        model = train_anomaly_detector(
            _pixels(workspace, good), candidate, calibration_images=_pixels(workspace, dev),
            calibration_labels=dev_labels if dev else None, progress=_labeled_progress(progress, candidate, candidates),
        )
        auroc = _dev_auroc(model, _pixels(workspace, dev), dev_labels) if len(candidates) > 1 else 0.0
        logger.info("anomaly model at input %s: dev AUROC %.4f", candidate.input_size, auroc)
        trained.append((auroc, candidate, model))
    plan, model = _smallest_of_best(trained)
    if len(candidates) > 1:
        plan = _explain_scale(plan, candidates)
    return {"state": model.to_dict(), "class_names": [OK_CLASS], "threshold": 0.5,
            "preprocessing": model.preprocessing.to_dict(), "image_ids": [image.image_id for image in good],
            "loss_history": None}, plan


SCALES = (1.0, 4 / 7, 3 / 7)
"""Input scales an anomaly model tries when defective dev images can rank them.

Finer input is not always better: on textured parts a coarser input can
ignore the texture and keep the defect (on magnetic-tile dev images,
96 x 96 px scored a higher AUROC than 224 x 224 px).
"""


def _labeled_progress(progress: Progress | None, candidate: TrainingPlan,
                      candidates: list[TrainingPlan]) -> Progress | None:
    """Prefix progress messages with the input size when several sizes are tried."""
    if progress is None or len(candidates) < 2:
        return progress
    height, width = candidate.input_size
    return lambda done, total, message: progress(done, total, f"{height} x {width} px: {message}")


def _near_duplicate_groups(workspace: Workspace, images: list[SnapshotImage], task: str) -> dict[int, str]:
    """Return a group name per labeled image that has near duplicates, so that splits keep each group together.

    Nothing is decoded when every labeled image keeps the split it has.
    """
    from defectlab.quality.duplicates import group_near_duplicates

    labeled = [image for image in images if image.label is not None]
    if not assign_splits(labeled, task=task):
        return {}
    groups = group_near_duplicates(_pixels(workspace, labeled))
    sizes = Counter(groups)
    shared: dict[int, str] = {}
    for image, group in zip(labeled, groups):
        if sizes[group] > 1:
            shared[group] = min(shared.get(group, image.sha256), image.sha256)
    logger.info("%d groups of near-duplicate images kept within one split", len(shared))
    return {labeled[i].image_id: shared[group] for i, group in enumerate(groups) if group in shared}


AUROC_TIE = 0.005
"""Dev AUROCs this close count as equal; dev sets of tens of images cannot rank them."""


def _smallest_of_best(trained: list[tuple[float, TrainingPlan, Any]]) -> tuple[TrainingPlan, Any]:
    """Return the plan and model with the smallest input among those within ``AUROC_TIE`` of the best dev AUROC.

    Of models that separate the dev images equally well, the smallest input
    predicts fastest.
    """
    best = max(auroc for auroc, _, _ in trained)
    tied = [(plan.input_size[0] * plan.input_size[1], index) for index, (auroc, plan, _) in enumerate(trained)
            if auroc >= best - AUROC_TIE]
    _, chosen = min(tied)
    return trained[chosen][1], trained[chosen][2]


def _can_rank_scales(labeled: list[SnapshotImage]) -> bool:
    dev = [image.label != OK_CLASS for image in labeled if image.split == "dev"]
    return 0 < sum(dev) < len(dev)


def _announce_scales(plan: TrainingPlan) -> TrainingPlan:
    sizes = " px, ".join(f"{c.input_size[0]} x {c.input_size[1]}" for c in _scaled_plans(plan))
    reason = (f"The input size above is a starting point. Defective dev images are available, so input sizes "
              f"{sizes} px are each trained, and the one that best separates good from defective dev images "
              "(AUROC) is kept. Coarser input can ignore surface texture that finer input mistakes for defects.")
    return replace(plan, reasons=(*plan.reasons, reason))


def _scaled_plans(plan: TrainingPlan) -> list[TrainingPlan]:
    plans = []
    for scale in SCALES:
        height, width = (max(64, int(round(side * scale / 32)) * 32) for side in plan.input_size)
        if all((height, width) != other.input_size for other in plans):
            plans.append(replace(plan, input_size=(height, width)))
    return plans


def _dev_auroc(model, images: StoredPixels, labels: list[int]) -> float:  # noqa: ANN001 - an AnomalyModel
    from sklearn.metrics import roc_auc_score

    scores = model.predict(images, heatmaps=False).raw_scores
    return float(roc_auc_score(labels, scores))


def _explain_scale(plan: TrainingPlan, candidates: list[TrainingPlan]) -> TrainingPlan:
    sizes = ", ".join(f"{c.input_size[0]} x {c.input_size[1]}" for c in candidates)
    reason = (f"Input sizes {sizes} px were each trained and ranked by AUROC on the dev images; "
              f"{plan.input_size[0]} x {plan.input_size[1]} px separated good from defective images best "
              f"(or within {AUROC_TIE} of the best, at a smaller size that predicts faster) and is the size this "
              "model uses.")
    return replace(plan, reasons=(*plan.reasons, reason))


def _fit_classifier(workspace: Workspace, train: list[SnapshotImage], dev: list[SnapshotImage], plan: TrainingPlan,
                    progress: Progress | None, on_epoch: EpochCallback | None = None) -> dict[str, Any]:
    from defectlab.training.classifier import train_classifier
    from defectlab.training.patches import train_patch_classifier

    class_names = sorted({image.label for image in train}, key=lambda name: (name != OK_CLASS, name))
    index = {name: position for position, name in enumerate(class_names)}
    dev = [image for image in dev if image.label in index]
    trainer = train_patch_classifier if plan.head == "patches" and dev else train_classifier
    extra = {"masks": StoredMasks(workspace.blobs, train)} if trainer is train_patch_classifier else {}
    model = trainer(
        _pixels(workspace, train), np.array([index[image.label] for image in train]), class_names, plan,
        dev_images=_pixels(workspace, dev), dev_labels=np.array([index[image.label] for image in dev], dtype=int),
        progress=progress, on_epoch=on_epoch, **extra,
    )
    return {"state": {"kind": plan.head if trainer is train_patch_classifier else "global", **model.to_dict()},
            "class_names": class_names, "threshold": model.threshold,
            "preprocessing": model.preprocessing.to_dict(), "image_ids": [image.image_id for image in train],
            "loss_history": _loss_curves(model.loss_history)}


def _loss_curves(history: list[dict[str, float]]) -> dict[str, list[float]]:
    """Turn one dict per epoch into one list per curve, as the report plots them."""
    return {"train": [entry["train_loss"] for entry in history], "dev": [entry["dev_loss"] for entry in history]}


def _register(workspace: Workspace, project_name: str, assigned: dict[int, str], plan: TrainingPlan,
              fitted: dict[str, Any]) -> int:
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        for image in session.scalars(select(Image).where(Image.id.in_(list(assigned)))):
            image.split = assigned[image.id]
        snapshot = take_snapshot(workspace, session, project)
        artifact = new_artifact(
            task=project.task, class_names=fitted["class_names"], threshold=fitted["threshold"],
            preprocessing=fitted["preprocessing"], state=fitted["state"], settings=plan.to_dict(),
            project=project.name, snapshot_id=snapshot.snapshot_id, image_ids=fitted["image_ids"],
            loss_history=fitted["loss_history"],
        )
        model = Model(project_id=project.id, snapshot_id=snapshot.snapshot_id, task=project.task,
                      artifact_sha256=workspace.blobs.put(dump_artifact(artifact)),
                      summary={"threshold": fitted["threshold"], "class_names": fitted["class_names"],
                               "settings": plan.to_dict(), "loss_curves": standard_curves(fitted["loss_history"])})
        session.add(model)
        session.flush()
        return model.id


def _counts(labeled: list[SnapshotImage]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter] = {}
    for image in labeled:
        counts.setdefault(image.split or "none", Counter())[image.label] += 1
    return {split: dict(sorted(counter.items())) for split, counter in sorted(counts.items())}
