"""What to label next: unlabeled images ranked by how much their labels are expected to teach the model.

Two things make a label useful. First, the model must be unsure about the image
(uncertainty: 1 at the threshold, falling to 0 half a score unit away). Second,
the image must differ from those already ranked above it (diversity). Without
diversity, the top of the list fills with near copies of one confusing part. The ranking is
greedy: each step takes the image with the highest uncertainty times
diversity, where diversity is the cosine distance of its pooled EfficientNet-Lite0
features to the nearest image already taken, relative to the typical distance
between unlabeled images and capped at 1.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sqlalchemy import select

from defectlab.data.pixels import StoredPixels
from defectlab.data.snapshot import image_label
from defectlab.errors import InvalidInputError, NotFoundError
from defectlab.evaluation.runner import load_stored_model
from defectlab.models.embeddings import embed_images
from defectlab.models.preprocess import Preprocessing
from defectlab.prediction.predictor import Predictor
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Image, Model

__all__ = ["suggest_images"]

logger = logging.getLogger(__name__)


def suggest_images(workspace: Workspace, project_name: str, *, count: int = 20,
                   model_id: int | None = None) -> list[dict[str, Any]]:
    """Return up to ``count`` unlabeled images of the project, most useful to label first.

    Each row has ``rank``, ``image_id``, ``path``, the model's ``label`` and
    ``score``, and the ``uncertainty``, ``diversity`` and ``value`` that placed it.

    Raises:
        InvalidInputError: ``count`` is below 1.
        NotFoundError: The project or model does not exist, or the project has no model yet.
    """
    if count < 1:
        raise InvalidInputError(f"count {count} is invalid; ask for at least 1 image")
    model_id, images = _model_and_unlabeled(workspace, project_name, model_id)
    if not images:
        return []
    artifact, _ = load_stored_model(workspace, model_id)
    pixels = StoredPixels(workspace.blobs, [sha for _, _, sha in images], [path for _, path, _ in images])
    predictor = Predictor.from_artifact(artifact)
    predictions = predictor.predict(pixels, paths=[path for _, path, _ in images])
    scores = np.array([p.score for p in predictions])
    uncertainty = np.clip(1.0 - np.abs(scores - predictor.threshold) / 0.5, 0.0, 1.0)
    features = embed_images(pixels, Preprocessing.from_dict(artifact["preprocessing"]))
    order, diversity = _greedy(uncertainty, features, min(count, len(images)))
    logger.info("ranked %d unlabeled images of %s with model %d", len(images), project_name, model_id)
    return [
        {"rank": rank + 1, "image_id": images[index][0], "path": images[index][1], "label": predictions[index].label,
         "score": round(float(scores[index]), 6), "uncertainty": round(float(uncertainty[index]), 4),
         "diversity": round(float(diversity[rank]), 4), "value": round(float(uncertainty[index] * diversity[rank]), 4),
         "model_id": model_id}
        for rank, index in enumerate(order)
    ]


def _model_and_unlabeled(workspace: Workspace, project_name: str,
                         model_id: int | None) -> tuple[int, list[tuple[int, str, str]]]:
    """Return the model id (the newest when None) and (id, path, sha256) of each unlabeled image."""
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        if model_id is None:
            model_id = session.scalar(select(Model.id).where(Model.project_id == project.id).order_by(Model.id.desc()))
            if model_id is None:
                raise NotFoundError(f"project {project_name!r} has no model yet; train one with "
                                    f"'defectlab train {project_name}' first")
        elif workspace.get_model(session, model_id).project_id != project.id:
            raise NotFoundError(f"model {model_id} belongs to another project; pick one of {project_name!r}'s models")
        stored = session.scalars(select(Image).where(Image.project_id == project.id).order_by(Image.id)).all()
        return model_id, [(i.id, i.path, i.sha256) for i in stored if image_label(i.annotations) is None]


def _greedy(uncertainty: np.ndarray, features: np.ndarray, count: int) -> tuple[list[int], list[float]]:
    """Pick ``count`` indices by uncertainty times diversity; return them and each pick's diversity."""
    distances = 1.0 - features @ features.T
    off_diagonal = distances[~np.eye(len(features), dtype=bool)]
    typical = float(np.median(off_diagonal)) if off_diagonal.size else 1.0
    nearest = np.full(len(features), np.inf)
    order, diversity = [], []
    for _ in range(count):
        spread = np.minimum(1.0, nearest / max(typical, 1e-9))
        value = uncertainty * spread + 1e-6 * uncertainty
        value[order] = -np.inf
        pick = int(np.argmax(value))
        order.append(pick)
        diversity.append(float(spread[pick]))
        nearest = np.minimum(nearest, distances[pick])
    return order, diversity
