"""Making proposals: a proposed label for every unlabeled image of a project, stored apart from the labels.

Proposals come from one of two sources:

* ``features``: the few-shot proposer (``defectlab.proposals.fewshot``) fitted
  on the labels of this moment, for classification and anomaly projects. It
  needs a handful of labeled images and takes seconds, and it improves each
  time it runs on more accepted labels.
* ``model``: the project's newest trained model (or the one asked for), for
  every task; segmentation and detection proposals carry regions.

``auto`` takes the model when one exists and no label changed since it was
trained, and the features otherwise. Each run replaces the image's open
proposal, which is kept with the status ``replaced``; reviewed ones stay as the
record of what people did with them. A small random share (``BLIND_SHARE``) of
the proposals is marked blind: the reviewer labels that image without seeing
the proposal. Each proposal records how many labeled images its run learned
from, so that ``defectlab.proposals.refresh`` can tell when enough new labels
have come in to propose again.
"""

from __future__ import annotations

import base64
import io
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from defectlab.data.pixels import StoredPixels
from defectlab.data.snapshot import image_label
from defectlab.errors import InvalidInputError, NotFoundError
from defectlab.evaluation.runner import load_stored_model
from defectlab.formats.records import OK_CLASS
from defectlab.prediction.predictor import Prediction, Predictor
from defectlab.proposals import fewshot
from defectlab.quality.duplicates import thumbnail
from defectlab.training.autotune import ImageStats, plan_training
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, Image, Model, Project, Proposal

__all__ = ["BLIND_SHARE", "SOURCES", "make_proposals"]

logger = logging.getLogger(__name__)

SOURCES = ("auto", "features", "model")

BLIND_SHARE = 0.1
"""Share of proposals that are blind checks: the reviewer labels the image without seeing the proposal."""

Progress = Callable[[int, int, str], None]


def make_proposals(workspace: Workspace, project_name: str, *, source: str = "auto", model_id: int | None = None,
                   blind_share: float = BLIND_SHARE, seed: int = 0,
                   progress: Progress | None = None) -> dict[str, Any]:
    """Propose a label for every unlabeled image of the project.

    Args:
        source: ``auto``, ``features`` or ``model`` (see the module docstring).
        model_id: The model to propose with; the project's newest when None.
        blind_share: Share of the proposals kept from the reviewer as blind checks, 0 to 0.5.
        seed: Seed of the few-shot training and of the choice of blind checks.
        progress: Called as ``progress(done, total, message)`` while features are extracted.

    Returns:
        ``project``, ``source`` (``features`` or ``model N``), ``proposed`` (how
        many images got a proposal), ``blind``, ``by_class`` (proposals per
        class) and ``seconds``.

    Raises:
        InvalidInputError: An unknown source, a blind share outside 0..0.5, or
            too few labels for the few-shot proposer.
        NotFoundError: The project or model does not exist, or ``model`` was asked
            for and the project has none.
    """
    if source not in SOURCES:
        raise InvalidInputError(f"source {source!r} is invalid; use one of {list(SOURCES)}")
    if not 0.0 <= blind_share <= 0.5:
        raise InvalidInputError(f"blind share {blind_share} is invalid; use a value from 0 to 0.5")
    started = time.perf_counter()
    task, images, model_id, stale = _survey(workspace, project_name, model_id, source)
    unlabeled = [image for image in images if image["label"] is None]
    use_model = source == "model" or model_id is not None and (source == "auto" and not stale)
    if use_model and model_id is None:
        raise NotFoundError(f"project {project_name!r} has no model yet; train one with "
                            f"'defectlab train {project_name}', or propose from features")
    if not use_model and task not in ("classification", "anomaly"):
        raise InvalidInputError(f"proposals from features are for classification and anomaly projects; "
                                f"{project_name!r} is a {task} project, so train a model and propose with it")
    if use_model:
        named, guesses = f"model {model_id}", _from_model(workspace, model_id, unlabeled)
    else:
        named, guesses = "features", _from_features(workspace, project_name, task, images, unlabeled, seed, progress)
    run = {"source": named, "labeled_images": len(images) - len(unlabeled), "blind_share": blind_share}
    counts = _store(workspace, project_name, run, unlabeled, guesses, seed)
    seconds = round(time.perf_counter() - started, 2)
    logger.info("proposed labels for %d images of %s from %s in %.1f s", len(unlabeled), project_name, named, seconds)
    return {"project": project_name, "source": named, "proposed": len(unlabeled), "blind": counts.pop("__blind__"),
            "by_class": counts, "seconds": seconds}


def _survey(workspace: Workspace, project_name: str, model_id: int | None,
            source: str) -> tuple[str, list[dict[str, Any]], int | None, bool]:
    """Return the task, every image (id, path, sha256, size, label), the model id and whether labels changed since."""
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        stored = session.scalars(select(Image).where(Image.project_id == project.id, Image.excluded.is_(False))
                                 .order_by(Image.id)
                                 .options(selectinload(Image.annotations).selectinload(Annotation.defect_class))).all()
        images = [{"id": image.id, "path": image.path, "sha256": image.sha256, "width": image.width,
                   "height": image.height, "channels": image.channels, "bit_depth": image.bit_depth,
                   "label": image_label(image.annotations)} for image in stored]
        model = _model(workspace, session, project, model_id) if source != "features" else None
        newest_label = session.scalar(select(func.max(Annotation.created_at)).join(Image)
                                      .where(Image.project_id == project.id))
        stale = model is not None and newest_label is not None and _aware(newest_label) > _aware(model.created_at)
        return project.task, images, model.id if model else None, stale


def _model(workspace: Workspace, session: Any, project: Project, model_id: int | None) -> Model | None:
    if model_id is None:
        return session.scalars(select(Model).where(Model.project_id == project.id).order_by(Model.id.desc())).first()
    model = workspace.get_model(session, model_id)
    if model.project_id != project.id:
        raise NotFoundError(f"model {model_id} belongs to another project; pick one of {project.name!r}'s models")
    return model


def _aware(moment: Any) -> Any:
    from datetime import timezone

    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _from_features(workspace: Workspace, project_name: str, task: str, images: list[dict[str, Any]],
                   unlabeled: list[dict[str, Any]], seed: int, progress: Progress | None) -> list[dict[str, Any]]:
    labeled = [image for image in images if image["label"] is not None]
    if not unlabeled:
        return []
    stats = [ImageStats(width=i["width"], height=i["height"], channels=i["channels"], bit_depth=i["bit_depth"])
             for i in images]
    input_size = plan_training(stats, "classification").input_size
    everything = StoredPixels(workspace.blobs, [i["sha256"] for i in images], [i["path"] for i in images])
    preprocessing = fewshot.fit_window(everything, input_size)
    cache = fewshot.FeatureCache(workspace.root / "cache" / "patch-features")
    report = (lambda done, total: progress(done, total, "Extracting features")) if progress else None

    def features(chosen: list[dict[str, Any]]) -> list[Any]:
        pixels = StoredPixels(workspace.blobs, [i["sha256"] for i in chosen], [i["path"] for i in chosen])
        return fewshot.patch_features(pixels, [i["sha256"] for i in chosen], preprocessing, cache, report)

    labels = [image["label"] for image in labeled]
    if len(set(labels)) >= 2:
        with workspace.session() as session:
            class_names = [c.name for c in workspace.get_project(session, project_name).classes]
        guesses = fewshot.guess_classes(features(labeled), labels, features(unlabeled), class_names, seed=seed)
    elif task == "anomaly" and labels:
        good = [image for image in labeled if image["label"] == OK_CLASS]
        guesses = fewshot.guess_by_distance(features(good), features(unlabeled),
                                            _defect_class(workspace, project_name))
    else:
        have = f"only {labels[0]!r} images" if labels else "no labeled image"
        raise InvalidInputError(f"proposals from features need labeled images of two classes (or, in an anomaly "
                                f"project, good images); project {project_name!r} has {have}. Label a few images "
                                "of each class first")
    guesses = fewshot.follow_near_copies(guesses, _thumbnails(workspace, unlabeled), _thumbnails(workspace, labeled),
                                         labels)
    return [{"label": guess.label, "confidence": guess.confidence, "regions": None} for guess in guesses]


def _thumbnails(workspace: Workspace, chosen: list[dict[str, Any]]) -> np.ndarray:
    """Return the near-duplicate ``thumbnail`` of each image, ``(N, 1024)``."""
    pixels = StoredPixels(workspace.blobs, [i["sha256"] for i in chosen], [i["path"] for i in chosen])
    return np.stack([thumbnail(pixels[index]) for index in range(len(pixels))]) if chosen else np.zeros((0, 1024))


def _defect_class(workspace: Workspace, project_name: str) -> str:
    with workspace.session() as session:
        names = [c.name for c in workspace.get_project(session, project_name).classes if c.name != OK_CLASS]
    if not names:
        raise InvalidInputError(f"project {project_name!r} has no defect class to propose; add one with "
                                f"'defectlab project add-class {project_name} NAME'")
    return names[0]


def _from_model(workspace: Workspace, model_id: int, unlabeled: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not unlabeled:
        return []
    artifact, _ = load_stored_model(workspace, model_id)
    predictor = Predictor.from_artifact(artifact)
    pixels = StoredPixels(workspace.blobs, [i["sha256"] for i in unlabeled], [i["path"] for i in unlabeled])
    predictions = predictor.predict(pixels, paths=[i["path"] for i in unlabeled])
    return [{"label": p.label, "confidence": _confidence(p), "regions": _regions(p, predictor.class_names)}
            for p in predictions]


def _confidence(prediction: Prediction) -> float:
    """Return the proposed class's probability where the model gives one, else the score's distance from the threshold.

    The distance is scaled to 0.5 to 1, reaching 1 at the nearer end of the 0..1 range.
    """
    if prediction.probabilities and prediction.label in prediction.probabilities:
        return float(prediction.probabilities[prediction.label])
    distance = abs(float(prediction.score) - float(prediction.threshold))
    return 0.5 + 0.5 * min(1.0, distance / max(min(prediction.threshold, 1 - prediction.threshold), 1e-6))


def _regions(prediction: Prediction, class_names: list[str]) -> list[dict[str, Any]] | None:
    """Boxes of a detection model; masks (as crops of their box) of a segmentation model; None otherwise.

    Only regions that pass their class's decision rule are proposed, as only those make the image defective.
    """
    if prediction.boxes is not None:
        return [{"class": box["class"], "box": [float(v) for v in box["box"]], "score": float(box["score"])}
                for box in prediction.boxes if box.get("counts", True)]
    if prediction.regions is None:
        return None
    found = []
    for region in prediction.regions:
        if not region.get("counts", True) or prediction.mask is None:
            continue
        x0, y0, x1, y1 = (int(v) for v in region["box"])  # the end is exclusive
        crop = prediction.mask[y0:y1, x0:x1] == class_names.index(region["class"])
        buffer = io.BytesIO()
        PILImage.fromarray((crop * 255).astype(np.uint8)).save(buffer, format="PNG")
        found.append({"class": region["class"], "score": float(region["score"]),
                      "mask": {"x": x0, "y": y0, "png": base64.b64encode(buffer.getvalue()).decode("ascii")}})
    return found


def _store(workspace: Workspace, project_name: str, run: dict[str, Any], unlabeled: list[dict[str, Any]],
           guesses: list[dict[str, Any]], seed: int) -> dict[str, int]:
    """Replace the open proposals with the new ones; return counts per class and of blind ones.

    ``run`` has the ``source``, ``labeled_images`` and ``blind_share`` that every new proposal records.
    """
    chooser = random.Random(seed)
    counts: dict[str, int] = {"__blind__": 0}
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        session.execute(update(Proposal).where(Proposal.project_id == project.id, Proposal.status == "open")
                        .values(status="replaced"))
        for image, guess in zip(unlabeled, guesses):
            blind = chooser.random() < run["blind_share"]
            session.add(Proposal(project_id=project.id, image_id=image["id"], label=guess["label"],
                                 regions=guess["regions"], confidence=round(float(guess["confidence"]), 6),
                                 status="open", blind=blind, **run))
            counts[guess["label"]] = counts.get(guess["label"], 0) + 1
            counts["__blind__"] += blind
    return counts
