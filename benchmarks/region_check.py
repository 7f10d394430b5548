"""Measure the label search of detection and segmentation projects on kolektorsdd with planted label errors.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/region_check.py

kolektorsdd (../shared/datasets/kolektorsdd, YOLO polygons) is imported with
format detection into a fresh temporary workspace twice: as a detection
project and as a segmentation project. In each, label errors are planted at a
fixed seed on defective images:

* dropped: the image's regions are deleted and it is labeled ``ok``, as when a
  defect was overlooked;
* shifted: each region of the image moves by its own width plus 10 pixels
  sideways (or by its height plus 10 pixels downwards or upwards when it
  cannot move sideways), so it no longer touches the defect.

Then ``search_region_labels`` runs, as ``defectlab check`` runs it. Figures per
project: AUROC of the score (1 - label quality) for planted against clean
images, the share of planted images among the first N flagged images (N = the
number planted), how many planted images were flagged at all and with which
problem, and the seconds the search took. Results go to
``benchmarks/results.json`` under ``"region label check"``, one entry per
project type, so ``--tasks detection`` and ``--tasks segmentation`` may run
separately. Other keys are kept.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from sqlalchemy import select

from defectlab.data.importer import import_path
from defectlab.formats.records import OK_CLASS
from defectlab.quality.region_labels import search_region_labels
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, DefectClass, Image

REPOSITORY = Path(__file__).resolve().parents[1]
KOLEKTOR = REPOSITORY.parent / "shared" / "datasets" / "kolektorsdd"
RESULTS_JSON = REPOSITORY / "benchmarks" / "results.json"
RESULTS_KEY = "region label check"
SEED = 20261205
PLANTED_PER_KIND = 5
MARGIN = 10

logger = logging.getLogger("benchmarks.region_check")


def plant_errors(workspace: Workspace, project_name: str, rng: np.random.Generator) -> dict[str, str]:
    """Drop the regions of some defective images and shift those of others; return path to what was planted."""
    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        ok_class = session.scalars(select(DefectClass).where(DefectClass.project_id == project.id,
                                                             DefectClass.name == OK_CLASS)).one()
        images = session.scalars(select(Image).where(Image.project_id == project.id).order_by(Image.path)).all()
        defective = [image for image in images if any(a.kind != "class" for a in image.annotations)]
        chosen = rng.choice(len(defective), size=2 * PLANTED_PER_KIND, replace=False)
        planted = {}
        for position, index in enumerate(chosen):
            image = defective[int(index)]
            if position < PLANTED_PER_KIND:
                _drop_regions(session, image, ok_class)
                planted[image.path] = "dropped"
            else:
                _shift_regions(image)
                planted[image.path] = "shifted"
    return planted


def _drop_regions(session: Any, image: Image, ok_class: DefectClass) -> None:  # noqa: ANN401 - a Session
    for annotation in [a for a in image.annotations if a.kind != "class"]:
        session.delete(annotation)
    session.add(Annotation(image_id=image.id, class_id=ok_class.id, kind="class", geometry=None,
                           labeler="benchmark"))


def _shift_regions(image: Image) -> None:
    for annotation in image.annotations:
        if annotation.kind not in ("polygon", "box"):
            continue
        points = np.asarray(annotation.geometry, dtype=np.float64).reshape(-1, 2)
        low, high = points.min(axis=0), points.max(axis=0)
        step = _step(low, high, (image.width, image.height))
        annotation.geometry = [float(value) for value in (points + step).ravel()]


def _step(low: np.ndarray, high: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Return the first move by the region's size plus ``MARGIN`` that keeps it inside the image."""
    extent = high - low + MARGIN
    for axis in (0, 1):
        for sign in (1, -1):
            step = np.zeros(2)
            step[axis] = sign * extent[axis]
            if (low + step >= 0).all() and (high + step <= np.asarray(size)).all():
                return step
    raise ValueError(f"a region from {low.tolist()} to {high.tolist()} cannot move by its size inside {size}")


def measure(workspace: Workspace, task: str, rng: np.random.Generator) -> dict[str, Any]:
    """Import kolektorsdd as a ``task`` project, plant errors, run the search and return its figures."""
    project_name = f"kolektor-{task}"
    workspace.create_project(project_name, task)
    import_path(workspace, project_name, KOLEKTOR)
    planted = plant_errors(workspace, project_name, rng)

    load_before = os.getloadavg()
    started = time.perf_counter()
    search = search_region_labels(workspace, project_name)
    seconds = time.perf_counter() - started

    paths = [image.path for image in search.images]
    is_planted = np.array([path in planted for path in paths])
    scores = 1.0 - search.quality
    flagged = [issue["path"] for issue in search.issues]
    top = flagged[:len(planted)]
    found = {issue["path"]: issue["problem"] for issue in search.issues if issue["path"] in planted}
    return {
        "images_searched": len(paths),
        "defective_images": sum(bool(image.regions) for image in search.images),
        "planted": dict(Counter(planted.values())),
        "auroc_planted_vs_clean": round(float(roc_auc_score(is_planted, scores)), 4),
        "flagged_images": len(flagged),
        "planted_among_first_n_flagged": {"n": len(planted), "planted": sum(path in planted for path in top)},
        "planted_flagged": len(found),
        "problems_given_to_planted": {kind: dict(Counter(found[path] for path in found if planted[path] == kind))
                                      for kind in ("dropped", "shifted")},
        "planted_ranks": sorted(flagged.index(path) + 1 for path in found),
        "notes": search.notes,
        "seconds": round(seconds, 1),
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["detection", "segmentation"],
                        choices=["detection", "segmentation"], help="Project types to measure.")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    torch.set_num_threads(2)
    figures: dict[str, Any] = {
        "command": "PYTHONPATH=src python benchmarks/region_check.py [--tasks detection|segmentation]",
        "date": date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "dataset": "kolektorsdd (YOLO polygons), 320 images",
        "seed": SEED,
    }
    with tempfile.TemporaryDirectory() as folder:
        workspace = Workspace.open(Path(folder) / "workspace")
        try:
            for task in arguments.tasks:
                figures[task] = measure(workspace, task, np.random.default_rng(SEED))
                figures[task]["command"] = " ".join(["PYTHONPATH=src python benchmarks/region_check.py",
                                                     *sys.argv[1:]])
                logger.info("%s: %s", task, figures[task])
        finally:
            workspace.close()

    # Read again: another run (such as one per task) may have written the file in the meantime.
    results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    merged = {**results.get(RESULTS_KEY, {}), **figures}
    results[RESULTS_KEY] = merged
    RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(merged, indent=2))


if __name__ == "__main__":
    main()
