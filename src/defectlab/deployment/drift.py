"""Drift: whether recent production images look like the images the model was trained on.

Two comparisons, each against the model's own training images:

- Image statistics (brightness, contrast, sharpness, width, height) of every
  recent prediction the server captured. A statistic drifts when the two
  distributions differ (two-sample Kolmogorov-Smirnov test, p below 0.01) and
  the production median moved by more than half the training interquartile
  range (or by 5 % of the training median when that range is zero).
- Embeddings (pooled EfficientNet-Lite0 features) of the production images the
  server kept. Each training image's cosine distance to its nearest other
  training image sets the normal spread. The embeddings drift when more
  production images lie beyond the 95th percentile of that spread than chance
  allows (5 % plus three standard errors).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from scipy.stats import ks_2samp
from sqlalchemy import select

from defectlab.data.pixels import StoredPixels
from defectlab.errors import InvalidInputError, NotFoundError
from defectlab.evaluation.runner import load_stored_model
from defectlab.images.prepare import Preprocessing
from defectlab.images.statistics import STATISTICS, image_statistics
from defectlab.models.embeddings import embed_images
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Image, Inference, Model

__all__ = ["drift_report"]

logger = logging.getLogger(__name__)

_MAX_REFERENCE = 400
_MAX_EMBEDDED = 200
_P_VALUE = 0.01

_WORDS = {
    "brightness": ("brighter", "darker"),
    "contrast": ("higher in contrast", "lower in contrast"),
    "sharpness": ("sharper", "blurrier"),
    "width": ("wider", "narrower"),
    "height": ("taller", "shorter"),
}


def drift_report(workspace: Workspace, project_name: str, *, model_id: int | None = None,
                 recent: int = 500) -> dict[str, Any]:
    """Compare the last ``recent`` captured predictions with the model's training images.

    Returns a dict with ``statistics`` (one row per statistic), ``embedding``
    (or None with too few kept images), and ``warnings``: plain sentences, empty
    when production looks like training.

    Raises:
        InvalidInputError: ``recent`` is below 1.
        NotFoundError: The project or model does not exist, or nothing was captured yet.
    """
    if recent < 1:
        raise InvalidInputError(f"recent {recent} is invalid; compare at least 1 captured prediction")
    model_id, stats, kept = _production(workspace, project_name, model_id, recent)
    artifact, snapshot = load_stored_model(workspace, model_id)
    trained = set(artifact.get("image_ids") or [])
    reference = [image for image in snapshot if image.image_id in trained][:_MAX_REFERENCE]
    pixels = StoredPixels(workspace.blobs, [image.sha256 for image in reference], [image.path for image in reference])
    reference_stats = [image_statistics(pixels[index]) for index in range(len(pixels))]

    rows = [_compare(name, [s[name] for s in reference_stats], [s[name] for s in stats if name in s])
            for name in STATISTICS]
    embedding = _embedding(workspace, pixels, kept, Preprocessing.from_dict(artifact["preprocessing"]))
    warnings = [row["warning"] for row in rows if row["drifted"]]
    if embedding is not None and embedding["drifted"]:
        warnings.append(embedding["warning"])
    logger.info("drift of %s against model %d: %d warnings", project_name, model_id, len(warnings))
    return {"model_id": model_id, "production_images": len(stats), "training_images": len(reference),
            "statistics": rows, "embedding": embedding, "warnings": warnings}


def _production(workspace: Workspace, project_name: str, model_id: int | None,
                recent: int) -> tuple[int, list[dict[str, float]], list[str]]:
    """Return the model id and the stats and kept-image digests of the last ``recent`` predictions."""
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        if model_id is None:
            model_id = session.scalar(select(Model.id).where(Model.project_id == project.id).order_by(Model.id.desc()))
        if model_id is None:
            raise NotFoundError(f"project {project_name!r} has no model yet; train one first")
        rows = session.execute(
            select(Inference.stats, Image.sha256).outerjoin(Image, Image.id == Inference.image_id)
            .where(Inference.project_id == project.id).order_by(Inference.id.desc()).limit(recent)).all()
    if not rows:
        raise NotFoundError(f"project {project_name!r} has no captured predictions; run "
                            f"'defectlab serve MODEL --capture {project_name}' and send images first")
    return model_id, [dict(s or {}) for s, _ in rows], [sha for _, sha in rows if sha is not None][:_MAX_EMBEDDED]


def _compare(name: str, reference: list[float], production: list[float]) -> dict[str, Any]:
    low, median, high = np.percentile(reference, [25, 50, 75])
    now = float(np.median(production)) if production else math.nan
    spread = float(high - low) if high > low else 0.05 * abs(float(median))
    p_value = float(ks_2samp(reference, production).pvalue) if len(reference) > 1 and len(production) > 1 else 1.0
    if spread > 0:
        shift = (now - float(median)) / spread
    else:
        shift = 0.0 if now == median else math.inf
    drifted = bool(p_value < _P_VALUE and abs(shift) > 0.5)
    direction = _WORDS[name][0 if shift > 0 else 1]
    return {"statistic": name, "training_median": round(float(median), 6), "production_median": round(now, 6),
            "shift": round(shift, 3), "p_value": p_value, "drifted": drifted,
            "warning": (f"Production images are {direction} than the training images "
                        f"(median {name} {now:.3g} against {float(median):.3g}).") if drifted else None}


def _embedding(workspace: Workspace, reference: StoredPixels, kept: list[str],
               preprocessing: Preprocessing) -> dict[str, Any] | None:
    if len(kept) < 5 or len(reference) < 5:
        return None
    training = embed_images(reference, preprocessing)
    production = embed_images(StoredPixels(workspace.blobs, kept, kept), preprocessing)
    within = 1.0 - training @ training.T
    np.fill_diagonal(within, np.inf)
    limit = float(np.percentile(within.min(axis=1), 95))
    distances = (1.0 - production @ training.T).min(axis=1)
    beyond = float((distances > limit).mean())
    allowed = 0.05 + 3 * math.sqrt(0.05 * 0.95 / len(kept))
    drifted = beyond > allowed
    return {"images": len(kept), "distance_limit": round(limit, 6), "beyond_limit": round(beyond, 4),
            "allowed": round(allowed, 4), "drifted": drifted,
            "warning": (f"{beyond:.0%} of the kept production images are farther from every training image than "
                        f"95% of training images are from each other (at most {allowed:.0%} expected). The model may "
                        "be seeing parts, lighting or cameras it was not trained on: label some and retrain.")
            if drifted else None}
