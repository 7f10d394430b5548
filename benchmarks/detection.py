"""Benchmark box detection on KolektorSDD and write benchmarks/detection.json and detection.md.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/detection.py --eval dev
    PYTHONPATH=src python benchmarks/detection.py --eval test

The images are imported into a temporary workspace as a ``detection``
project, the way the CLI imports them; the YOLO polygons become boxes around
their extent. Splits come from ``assign_splits`` (train, dev and test, stratified
by good and defective), with exact and near duplicates kept in one split, as
training a project does. The detector trains on the train split, and the dev
split sets the image-level threshold. ``--eval dev`` scores the dev split and
is the only mode to tune with; ``--eval test`` scores the held-out test split
and writes the results files. Times are wall-clock seconds with ``--threads``
PyTorch threads and include JPEG decoding; the load average at the start and
end is recorded, because other work on the machine slows training.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from defectlab.data.importer import import_path
from defectlab.data.pixels import StoredPixels
from defectlab.data.snapshot import SnapshotImage, freeze_image
from defectlab.evaluation.boxes import BoxEvaluation, evaluate_boxes
from defectlab.formats.records import OK_CLASS
from defectlab.quality.duplicates import group_near_duplicates
from defectlab.training.detection import Detector, choose_threshold, regions_to_boxes, train_detector
from defectlab.training.splits import assign_splits
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, Image

REPOSITORY = Path(__file__).resolve().parents[1]
KOLEKTOR = REPOSITORY.parent / "shared" / "datasets" / "kolektorsdd"
RESULTS_JSON = REPOSITORY / "benchmarks" / "detection.json"
RESULTS_MD = REPOSITORY / "benchmarks" / "detection.md"
PROJECT = "kolektor-detection"
ESCAPE_COST = 5.0
"""Cost of one escape in overkills when the dev split sets the threshold (the auto-tuner's default)."""

logger = logging.getLogger("benchmarks.detection")


@dataclass
class Split:
    """The images of one split with their truths."""

    images: StoredPixels
    boxes: list[list[tuple[int, float, float, float, float]]]
    paths: list[str]

    def truths(self, class_names: Sequence[str]) -> list[list[dict[str, Any]]]:
        """Return the boxes as ``{"class", "box"}`` dicts, as ``evaluate_boxes`` reads them."""
        return [[{"class": class_names[row[0]], "box": list(row[1:])} for row in listed] for listed in self.boxes]


def load_splits(workspace: Workspace, source: Path) -> tuple[list[str], dict[str, Split]]:
    """Import ``source`` as a detection project; return the class names and the train, dev and test splits."""
    workspace.create_project(PROJECT, "detection")
    import_path(workspace, PROJECT, source)
    with workspace.session() as session:
        project = workspace.get_project(session, PROJECT)
        rows = session.scalars(
            select(Image).where(Image.project_id == project.id).order_by(Image.path)
            .options(selectinload(Image.annotations).selectinload(Annotation.defect_class))
        ).all()
        images = [freeze_image(row) for row in rows]
        class_names = [OK_CLASS] + sorted(c.name for c in project.classes if c.name != OK_CLASS)

    images = [image for image in images if image.label is not None]
    assigned = assign_splits(images, task="detection", near=_duplicate_groups(workspace, images))
    images = [replace(image, split=assigned.get(image.image_id, image.split)) for image in images]
    splits = {name: _split(workspace, [image for image in images if image.split == name], class_names)
              for name in ("train", "dev", "test")}
    return class_names, splits


def _duplicate_groups(workspace: Workspace, images: list[SnapshotImage]) -> dict[int, str]:
    """Return a group name per image that has exact or near duplicates (as ``train_project`` groups them)."""
    groups = group_near_duplicates(_pixels(workspace, images))
    sizes = Counter(groups)
    names: dict[int, str] = {}
    for image, group in zip(images, groups):
        if sizes[group] > 1:
            names[group] = min(names.get(group, image.sha256), image.sha256)
    logger.info("%d groups of duplicate images kept within one split", len(names))
    return {image.image_id: names[group] for image, group in zip(images, groups) if group in names}


def _pixels(workspace: Workspace, images: list[SnapshotImage]) -> StoredPixels:
    return StoredPixels(workspace.blobs, [image.sha256 for image in images], [image.path for image in images])


def _split(workspace: Workspace, images: list[SnapshotImage], class_names: list[str]) -> Split:
    boxes = [regions_to_boxes(image.regions, class_names, masks=workspace.blobs.get) for image in images]
    return Split(_pixels(workspace, images), boxes, [image.path for image in images])


def measure(detector: Detector, split: Split, class_names: list[str], threshold: float) -> tuple[BoxEvaluation, float]:
    """Predict a split one image at a time; return the box metrics and milliseconds per image (decode included)."""
    detector.predict([split.images[0]])  # warm-up: the first call allocates buffers
    predictions = []
    started = time.perf_counter()
    for index in range(len(split.paths)):
        predictions.extend(detector.predict([split.images[index]]))
    per_image_ms = (time.perf_counter() - started) / len(split.paths) * 1000
    return evaluate_boxes(predictions, split.truths(class_names), class_names, threshold=threshold), per_image_ms


def run(evaluate: str, threads: int) -> dict[str, Any]:
    """Import, split, train on train, set the threshold on dev and score ``evaluate``; return the figures."""
    torch.set_num_threads(threads)
    load_before = os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix="defectlab-detection-"))
    workspace = Workspace.open(scratch / "ws")
    try:
        class_names, splits = load_splits(workspace, KOLEKTOR)
        train, dev = splits["train"], splits["dev"]
        started = time.perf_counter()
        detector = train_detector(train.images, train.boxes, class_names)
        training_seconds = time.perf_counter() - started
        dev_scores = detector.image_scores(detector.predict(dev.images))
        detector.threshold = choose_threshold(dev_scores, [bool(listed) for listed in dev.boxes],
                                              escape_cost=ESCAPE_COST)
        evaluation, per_image_ms = measure(detector, splits[evaluate], class_names, detector.threshold)
        dev_evaluation = evaluation if evaluate == "dev" else measure(detector, dev, class_names, detector.threshold)[0]
    finally:
        workspace.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "dataset": "kolektorsdd (YOLO polygons as boxes)",
        "evaluated_split": evaluate,
        "images": {name: {"all": len(split.paths), "defective": sum(1 for listed in split.boxes if listed),
                          "boxes": sum(len(listed) for listed in split.boxes)} for name, split in splits.items()},
        "input_size": list(detector.input_size),
        "epochs": len(detector.loss_history),
        "threshold": detector.threshold,
        "ap50": evaluation.ap50,
        "ap50_95": evaluation.ap50_95,
        "recall_by_size": evaluation.recall_by_size,
        "image_level": evaluation.to_dict()["image_level"],
        "dev": {"ap50": dev_evaluation.ap50, "ap50_95": dev_evaluation.ap50_95},
        "training_seconds": round(training_seconds, 1),
        "prediction_ms_per_image": round(per_image_ms, 1),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "torch_threads": threads, "torch": torch.__version__,
                    "python": platform.python_version(),
                    "load_average_1min": {"start": round(load_before[0], 2), "end": round(os.getloadavg()[0], 2)}},
        "command": "PYTHONPATH=src python " + " ".join(["benchmarks/detection.py", *sys.argv[1:]]),
    }


def write_markdown(results: dict[str, Any]) -> str:
    """Return a short page with the figures, the command and the conditions they were measured under."""
    level = results["image_level"]
    recall = ", ".join(f"{size} {row['recall'] if row['recall'] is None else round(row['recall'], 3)} "
                       f"({row['truths']} boxes)" for size, row in results["recall_by_size"].items())
    machine = results["machine"]
    lines = [
        "# Box detection on KolektorSDD",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Split scored: {results['evaluated_split']}; images per split: {json.dumps(results['images'])}.",
        f"Input {results['input_size'][0]} x {results['input_size'][1]} px (height x width), "
        f"{results['epochs']} epochs, image threshold {results['threshold']:.3f} (set on dev).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| AP at IoU 0.5 | {results['ap50']:.3f} |",
        f"| AP at IoU 0.5:0.95 | {results['ap50_95']:.3f} |",
        f"| dev split: AP at IoU 0.5, and at 0.5:0.95 | {results['dev']['ap50']:.3f}, "
        f"{results['dev']['ap50_95']:.3f} |",
        f"| recall at the threshold, IoU 0.5 | {recall} |",
        f"| escapes | {level['escapes']} of {level['defective_images']} defective images |",
        f"| overkills | {level['overkills']} of {level['good_images']} good images |",
        f"| training | {results['training_seconds']} s |",
        f"| prediction | {results['prediction_ms_per_image']} ms per image, one at a time, JPEG decoding included |",
        "",
        f"Measured on {machine['cpus']} CPU cores with {machine['torch_threads']} PyTorch thread(s), torch "
        f"{machine['torch']}. The machine was shared: the 1-minute load average was "
        f"{machine['load_average_1min']['start']} at the start and {machine['load_average_1min']['end']} at the end, "
        "so the times are upper bounds.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval", choices=("dev", "test"), default="dev",
                        help="split to score: dev for tuning, test for the held-out figures (written to files)")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch CPU threads (default 2)")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not KOLEKTOR.is_dir():
        sys.exit(f"{KOLEKTOR} is missing; this benchmark needs the KolektorSDD images")

    results = run(arguments.eval, arguments.threads)
    print(json.dumps(results, indent=2))
    if arguments.eval == "test":
        RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n")
        RESULTS_MD.write_text(write_markdown(results))


if __name__ == "__main__":
    main()
