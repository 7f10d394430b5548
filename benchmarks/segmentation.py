"""Train the segmentation model on kolektorsdd and magnetic-tile and measure it on held-out images.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/segmentation.py --eval dev    # tuning: scores the dev split, prints only
    PYTHONPATH=src python benchmarks/segmentation.py --eval test   # the held-out figures; writes the files

Each dataset in ../shared/datasets is imported into a fresh temporary workspace
as a segmentation project, with format detection, as the CLI imports it. The
labeled images are split into train, dev and test by ``assign_splits``, with
near duplicates (the same magnetic tile photographed at several exposures) kept
in one split, as ``defectlab.training.run`` splits them. ``train_segmenter``
sees the train split only. ``--eval test`` writes ``benchmarks/segmentation.json``
and ``benchmarks/segmentation.md``.

Figures:

* kolektorsdd: image-level average precision and AUROC of the defect score
  (the largest defect probability of any pixel). The escape rate at the
  threshold that allows at most 5 % overkill is given twice: with the threshold
  read on the dev split and applied to test, and read on test itself (a point
  of the test curve). Pixel IoU and Dice of the defect class.
* magnetic-tile: IoU and Dice per defect class and their mean over the five
  defect classes, accumulated over all test images (``MT_Free`` included).

Pixel figures are measured on the masks the product draws: after training,
``calibrate_segmentation`` chooses the image threshold and each class's
outline level on the dev split, as ``defectlab train`` does, and the
prediction engine draws the regions with them. The figures of the plain rule
(the most probable class of each pixel, each connected defect region given
one class) are kept beside them under ``argmax_*``.

Times are wall-clock seconds with 2 torch threads. The process's CPU seconds
and the load average are recorded beside them, because on a shared machine
other jobs slow training down, sometimes several times over.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import platform
import resource
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
from PIL import Image as PILImage
from PIL import ImageDraw
from sklearn.metrics import average_precision_score, roc_auc_score
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from defectlab.data.importer import import_path
from defectlab.data.pixels import StoredPixels, Subset
from defectlab.data.snapshot import SnapshotImage, freeze_image
from defectlab.evaluation.masks import IGNORE_INDEX, evaluate_masks, to_class_map
from defectlab.formats.records import OK_CLASS
from defectlab.prediction.engines import build_region_engine
from defectlab.quality.duplicates import group_near_duplicates
from defectlab.runtime.tiles import stitch_whole
from defectlab.training.region_models import calibrate_segmentation
from defectlab.training.segmentation import Segmenter, train_segmenter
from defectlab.training.splits import assign_splits
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, Image

REPOSITORY = Path(__file__).resolve().parents[1]
DATASETS = REPOSITORY.parent / "shared" / "datasets"
RESULTS_JSON = REPOSITORY / "benchmarks" / "segmentation.json"
RESULTS_PAGE = REPOSITORY / "benchmarks" / "segmentation.md"
THREADS = 2
MAX_OVERKILL = 0.05
BENCHMARKS = {"kolektorsdd": "kolektorsdd", "magnetic-tile": "magnetic-tile"}

logger = logging.getLogger("benchmarks.segmentation")


@dataclass
class Project:
    """A segmentation project's labeled images with their splits, pixels and class masks."""

    name: str
    class_names: list[str]
    images: list[SnapshotImage]
    pixels: StoredPixels
    masks: ClassMasks

    def indices(self, split: str) -> list[int]:
        return [index for index, image in enumerate(self.images) if image.split == split]


class ClassMasks(Sequence):
    """Per image, a class-index mask ``(H, W)`` uint8 drawn from its regions, decoded on access.

    A defective image without regions is all ``IGNORE_INDEX``: its defect was
    never drawn, so none of its pixels is known to be good.
    """

    def __init__(self, workspace: Workspace, images: Sequence[SnapshotImage], class_names: Sequence[str]) -> None:
        self.workspace = workspace
        self.images = list(images)
        self.index = {name: position for position, name in enumerate(class_names)}

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> np.ndarray:
        image = self.images[index]
        mask = np.zeros((image.height, image.width), dtype=np.uint8)
        if image.label != OK_CLASS and not image.regions:
            mask[:] = IGNORE_INDEX
        for region in image.regions:
            mask[self._region_pixels(region, mask.shape)] = self.index[region["class"]]
        return mask

    def _region_pixels(self, region: dict[str, Any], shape: tuple[int, int]) -> np.ndarray:
        if region["kind"] == "mask":
            return np.asarray(PILImage.open(io.BytesIO(self.workspace.blobs.get(region["mask_sha256"]))).convert("L")) > 0
        canvas = PILImage.new("1", (shape[1], shape[0]), 0)
        draw = ImageDraw.Draw(canvas)
        if region["kind"] == "box":
            draw.rectangle(region["geometry"], fill=1)
        else:
            points = region["geometry"]
            draw.polygon(list(zip(points[0::2], points[1::2])), fill=1)
        return np.asarray(canvas, dtype=bool)


def load_project(workspace: Workspace, name: str, source: Path) -> Project:
    """Import ``source`` into a new segmentation project and split its labeled images."""
    workspace.create_project(name, "segmentation")
    report = import_path(workspace, name, source)
    with workspace.session() as session:
        project = workspace.get_project(session, name)
        defect_classes = sorted(item.name for item in project.classes if item.name != OK_CLASS)
        rows = session.scalars(
            select(Image).where(Image.project_id == project.id).order_by(Image.path)
            .options(selectinload(Image.annotations).selectinload(Annotation.defect_class))
        ).all()
        images = [image for image in (freeze_image(row) for row in rows) if image.label is not None]

    pixels = StoredPixels(workspace.blobs, [image.sha256 for image in images], [image.path for image in images])
    assigned = assign_splits(images, task="segmentation", near=_near_duplicate_groups(images, pixels))
    images = [replace(image, split=assigned.get(image.image_id, image.split)) for image in images]
    class_names = [OK_CLASS, *defect_classes]
    logger.info("%s: %d images imported, %d labeled; splits %s", name, report.added, len(images),
                dict(Counter((image.split, image.label) for image in images)))
    return Project(name, class_names, images, pixels, ClassMasks(workspace, images, class_names))


def _near_duplicate_groups(images: list[SnapshotImage], pixels: StoredPixels) -> dict[int, str]:
    groups = group_near_duplicates(pixels)
    sizes = Counter(groups)
    return {image.image_id: f"group-{group}" for image, group in zip(images, groups) if sizes[group] > 1}


def train(project: Project) -> tuple[Segmenter, dict[str, Any]]:
    """Train on the train split; return the model and the time it took."""
    train_rows = project.indices("train")
    load_before = os.getloadavg()
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    model = train_segmenter(Subset(project.pixels, train_rows), Subset(project.masks, train_rows),
                            project.class_names)
    timing = {
        "training_seconds": round(time.perf_counter() - started, 1),
        "training_cpu_seconds": round(_cpu_seconds() - cpu_before, 1),
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
    }
    return model, timing


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Predictions:
    """What the model said about the images of one split, kept small: class maps, not probabilities."""

    rows: list[int]
    scores: np.ndarray
    masks: list[np.ndarray]
    argmax_maps: list[np.ndarray]
    ms_per_image: float


@dataclass
class Calibrated:
    """A trained model with the threshold and outline levels chosen on dev, and the engine that applies them."""

    model: Segmenter
    threshold: float
    outlines: dict[str, float]
    reasons: list[str]
    engine: Any


def calibrate(workspace: Workspace, project: Project, model: Segmenter) -> Calibrated:
    """Choose the threshold and outline levels on the dev split, as ``defectlab train`` does."""
    state = {"kind": "segmentation", "model": model.to_dict(), "rules": {}, "tiling": None}
    dev = [project.images[row] for row in project.indices("dev")]
    threshold, outlines, reasons = calibrate_segmentation(workspace, dev, state, project.class_names)
    engine = build_region_engine({**state, "outlines": outlines}, project.class_names, threshold=threshold)
    logger.info("%s: threshold %.3f, outline levels %s", project.name, threshold, outlines)
    return Calibrated(model, threshold, outlines, reasons, engine)


def predict(calibrated: Calibrated, project: Project, split: str) -> Predictions:
    """Predict the split's images one at a time (decoded beforehand, so the time excludes decoding)."""
    rows = project.indices(split)
    scores, masks, argmax_maps, seconds = [], [], [], 0.0
    for row in rows:
        pixels = project.pixels[row]
        started = time.perf_counter()
        (probabilities,) = calibrated.model.predict([pixels])
        score, _, mask = calibrated.engine.decide(stitch_whole(probabilities))
        seconds += time.perf_counter() - started
        scores.append(score)
        masks.append(mask)
        argmax_maps.append(to_class_map(probabilities, one_class_per_region=True))
    return Predictions(rows, np.array(scores), masks, argmax_maps, round(1000 * seconds / max(len(rows), 1), 1))


def threshold_at_overkill(good_scores: np.ndarray, max_overkill: float = MAX_OVERKILL) -> float:
    """Return the lowest threshold at which at most ``max_overkill`` of the good images score above it."""
    ordered = np.sort(np.asarray(good_scores))[::-1]
    allowed = int(math.floor(max_overkill * len(ordered)))
    return float(ordered[allowed]) if allowed < len(ordered) else 0.0


def image_level(is_defect: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Return escapes and overkills when images scoring above ``threshold`` are called defective."""
    called = scores > threshold
    escapes = int(np.sum(is_defect & ~called))
    overkills = int(np.sum(~is_defect & called))
    return {"threshold": round(threshold, 4), "escapes": escapes, "defective_images": int(is_defect.sum()),
            "escape_rate": round(escapes / max(int(is_defect.sum()), 1), 4), "overkills": overkills,
            "good_images": int((~is_defect).sum()), "overkill_rate": round(overkills / max(int((~is_defect).sum()), 1), 4)}


def pixel_figures(project: Project, predictions: Predictions) -> dict[str, Any]:
    """Return IoU and Dice of the drawn masks, and of the plain most-probable-class maps under ``argmax_*``."""
    figures = {}
    for prefix, maps in (("", predictions.masks), ("argmax_", predictions.argmax_maps)):
        evaluation = evaluate_masks((project.masks[row] for row in predictions.rows), maps, project.class_names)
        figures[f"{prefix}iou"] = {name: _rounded(value) for name, value in zip(project.class_names, evaluation.iou)}
        figures[f"{prefix}dice"] = {name: _rounded(value)
                                    for name, value in zip(project.class_names, evaluation.dice)}
        figures[f"{prefix}mean_defect_iou"] = _rounded(evaluation.mean_defect_iou)
    return figures


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def measure(project: Project, calibrated: Calibrated, split: str) -> dict[str, Any]:
    """Return the image-level and pixel figures of the calibrated model on ``split``.

    With ``split == "test"`` the dev split's figures are added under ``"dev"``,
    so that choices between runs can be made on dev figures alone.
    """
    held_out = predict(calibrated, project, split)
    figures = {"split": split, **split_figures(project, held_out),
               "at_model_threshold": image_level(_is_defect(project, held_out), held_out.scores,
                                                 calibrated.threshold),
               "outlines": calibrated.outlines, "calibration": calibrated.reasons}
    if split == "test":
        dev = predict(calibrated, project, "dev")
        figures["at_5_percent_overkill_on_dev"] = image_level(
            _is_defect(project, held_out), held_out.scores,
            threshold_at_overkill(dev.scores[~_is_defect(project, dev)]))
        figures["dev"] = split_figures(project, dev)
    return figures


def split_figures(project: Project, predictions: Predictions) -> dict[str, Any]:
    """Return the image-level and pixel figures of one split's predictions."""
    is_defect = _is_defect(project, predictions)
    return {
        "images": len(predictions.rows),
        "defective_images": int(is_defect.sum()),
        "image_average_precision": round(float(average_precision_score(is_defect, predictions.scores)), 4),
        "image_auroc": round(float(roc_auc_score(is_defect, predictions.scores)), 4),
        "at_5_percent_overkill_on_this_split": image_level(
            is_defect, predictions.scores, threshold_at_overkill(predictions.scores[~is_defect])),
        "prediction_ms_per_image": predictions.ms_per_image,
        **pixel_figures(project, predictions),
    }


def _is_defect(project: Project, predictions: Predictions) -> np.ndarray:
    return np.array([project.images[row].label != OK_CLASS for row in predictions.rows])


def run(name: str, split: str, workspace: Workspace) -> dict[str, Any]:
    project = load_project(workspace, name, DATASETS / BENCHMARKS[name])
    model, timing = train(project)
    counts = {part: len(project.indices(part)) for part in ("train", "dev", "test")}
    logger.info("%s trained in %.1f s", name, timing["training_seconds"])
    calibrated = calibrate(workspace, project, model)
    return {"images": counts, "class_names": project.class_names, "input_size": list(model.input_size),
            "settings": model.settings, **timing, **measure(project, calibrated, split)}


def write_page(results: dict[str, Any]) -> None:
    """Write the short results page ``benchmarks/segmentation.md``."""
    kolektor, tiles = results.get("kolektorsdd"), results.get("magnetic-tile")
    lines = [
        "# Segmentation benchmark",
        "",
        f"Command (repository root): `{results['command']}`",
        "",
        f"Machine: {results['machine']['cpus']} CPUs, torch {results['machine']['torch']} with "
        f"{THREADS} threads. {results['machine']['note']}",
        "",
        "Model: `defectlab.training.segmentation.train_segmenter` with its own settings, trained on the "
        "train split; figures on the test split, which guided no setting.",
        "",
    ]
    if kolektor:
        dev_point, test_point = kolektor["at_5_percent_overkill_on_dev"], kolektor["at_5_percent_overkill_on_this_split"]
        lines += [
            "## kolektorsdd",
            "",
            "| figure | value |",
            "|---|---|",
            f"| test images (defective) | {kolektor['images']} ({kolektor['defective_images']}) |",
            f"| image average precision | {kolektor['image_average_precision']} |",
            f"| image AUROC | {kolektor['image_auroc']} |",
            *_model_threshold_row(kolektor),
            f"| escape rate at the threshold of 5 % dev overkill, {dev_point['threshold']} | {dev_point['escape_rate']} "
            f"(overkill {dev_point['overkill_rate']}) |",
            f"| escape rate at ≤5 % test overkill (threshold {test_point['threshold']}) | "
            f"{test_point['escape_rate']} (overkill {test_point['overkill_rate']}) |",
            f"| defect pixel IoU / Dice | {kolektor['iou']['defect']} / {kolektor['dice']['defect']} |",
            f"| training seconds (CPU seconds) | {kolektor['training_seconds']} ({kolektor['training_cpu_seconds']}) |",
            f"| load average before / after training | {kolektor['load_average_before'][0]} / "
            f"{kolektor['load_average_after'][0]} |",
            f"| prediction ms per image | {kolektor['prediction_ms_per_image']} |",
            "",
        ]
        lines += _earlier_run_note(kolektor)
    if tiles:
        defect_names = tiles["class_names"][1:]
        argmax = tiles.get("argmax_iou")
        lines += [
            "## magnetic-tile",
            "",
            "| class | outline level | IoU | Dice | IoU of the most probable class |",
            "|---|---|---|---|---|",
            *[f"| {name} | {tiles.get('outlines', {}).get(name, '')} | {tiles['iou'][name]} | {tiles['dice'][name]} "
              f"| {argmax[name] if argmax else ''} |" for name in defect_names],
            f"| **mean of the defect classes** | | **{tiles['mean_defect_iou']}** | | "
            f"{tiles.get('argmax_mean_defect_iou', '')} |",
            "",
            f"Test images: {tiles['images']} ({tiles['defective_images']} defective); image average precision "
            f"{tiles['image_average_precision']}; training {tiles['training_seconds']} s "
            f"({tiles['training_cpu_seconds']} CPU s, load average {tiles['load_average_before'][0]} before, "
            f"{tiles['load_average_after'][0]} after); prediction {tiles['prediction_ms_per_image']} ms per image.",
            "",
        ]
        if "at_model_threshold" in tiles:
            point = tiles["at_model_threshold"]
            lines += [f"At the threshold chosen on dev ({point['threshold']}): escapes {point['escapes']} of "
                      f"{point['defective_images']} defective images, overkills {point['overkills']} of "
                      f"{point['good_images']} good images.", ""]
        lines += _earlier_run_note(tiles)
    lines += results.get("notes", [])
    RESULTS_PAGE.write_text("\n".join(lines).rstrip() + "\n")


def _model_threshold_row(figures: dict[str, Any]) -> list[str]:
    point = figures.get("at_model_threshold")
    if not point:
        return []
    return [f"| escapes and overkills at the model's threshold {point['threshold']} (chosen on dev as "
            f"`defectlab train` does) | {point['escapes']} of {point['defective_images']}, {point['overkills']} of "
            f"{point['good_images']} |"]


def _earlier_run_note(figures: dict[str, Any]) -> list[str]:
    if "command" not in figures:
        return []
    return [f"These figures come from an earlier run, `{figures['command']}`. {figures.get('machine_note', '')}", ""]


def merge_earlier(results: dict[str, Any]) -> dict[str, Any]:
    """Keep the recorded figures of datasets this run skipped, each with the command and note of its own run."""
    if not RESULTS_JSON.exists():
        return results
    earlier = json.loads(RESULTS_JSON.read_text())
    merged = dict(results)
    for name in BENCHMARKS:
        if name in results or name not in earlier:
            continue
        figures = dict(earlier[name])
        figures.setdefault("command", earlier.get("command"))
        figures.setdefault("machine_note", earlier.get("machine", {}).get("note", ""))
        merged[name] = figures
    return merged


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval", choices=["dev", "test"], default="dev",
                        help="split to score: dev while tuning, test once for the recorded figures")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="datasets to run (default: both)")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(THREADS)
    if not DATASETS.is_dir():
        sys.exit(f"{DATASETS} is missing; the segmentation benchmark needs the real datasets")

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="defectlab-segmentation-") as scratch:
        workspace = Workspace.open(Path(scratch) / "workspace")
        try:
            for name in arguments.only or sorted(BENCHMARKS):
                results[name] = run(name, arguments.eval, workspace)
        finally:
            workspace.close()
    results["command"] = " ".join(["PYTHONPATH=src python benchmarks/segmentation.py", *(argv or sys.argv[1:])])
    results["machine"] = {"cpus": os.cpu_count(), "torch_threads": THREADS, "python": platform.python_version(),
                          "torch": torch.__version__, "note": _load_note(results)}
    print(json.dumps(results, indent=2))
    if arguments.eval == "test":
        results = merge_earlier(results)
        RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n")
        write_page(results)


def _load_note(results: dict[str, Any]) -> str:
    loads = [value for entry in results.values() if isinstance(entry, dict)
             for value in entry.get("load_average_before", [])[:1] + entry.get("load_average_after", [])[:1]]
    if loads and max(loads) > 2.5:
        return (f"The machine was shared and busy (1-minute load average up to {max(loads):.1f} on 2 CPUs), "
                "so wall-clock times are longer than on an idle machine.")
    return "The load average stayed at or below 2.5 on 2 CPUs during training."


if __name__ == "__main__":
    main()
