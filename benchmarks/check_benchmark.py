"""Benchmark ``defectlab check`` on a copy of magnetic tile with known flipped labels, copies and other parts.

Usage (from the repository root)::

    PYTHONPATH=src .venv/bin/python benchmarks/check_benchmark.py

A copy of ``../shared/datasets/magnetic-tile`` (class folders, written to a
temporary folder) gets 10 % of its labels flipped to another class at random
(seed 0), 20 exact copies and 20 near copies (10 re-encoded as JPEG at quality 70,
10 resized to 80 %) of random images, and 10 random kolektorsdd images (a
commutator, another part from another camera) filed among the good tiles. The
copy is imported into a fresh workspace and checked. The figures go to
``benchmarks/results.json`` under "data check":

- the AUROC of the suspicious-label score (1 - label quality) between flipped and
  clean tiles, and the share of truly flipped tiles among the N worst (N = flipped);
  the commutators are left out of both, so the figures compare with earlier runs;
- how many exact and near copies were found, and how many reported pairs were
  neither an added copy nor a pair of images the dataset already holds twice;
- how many commutators were reported as outliers, and how many tiles were, per class;
- the wall-clock seconds of ``check_project``.

A second, smaller measurement runs the outlier search alone the other way round:
the 320 kolektorsdd images with 10 random tiles among them. Its figures go under
"data check outliers, kolektorsdd with tiles".
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from defectlab.data.importer import import_path
from defectlab.data.pixels import StoredPixels
from defectlab.images import decode_image
from defectlab.quality.check import check_project, load_items, score_labels
from defectlab.quality.outliers import OUTLIER_SCORE, find_outliers, get_outlier_scores, image_features
from defectlab.workspace import Workspace

REPOSITORY = Path(__file__).resolve().parents[1]
SOURCE = REPOSITORY.parent / "shared" / "datasets" / "magnetic-tile"
OTHER_PART = REPOSITORY.parent / "shared" / "datasets" / "kolektorsdd"
RESULTS = REPOSITORY / "benchmarks" / "results.json"
SEED = 0
OTHER_PART_IMAGES = 10
OK_FOLDER = "MT_Free"


@dataclass
class Alterations:
    """Changes that ``build_copy`` made, as paths relative to the copy's root."""

    flipped: set[str] = field(default_factory=set)
    exact: set[frozenset[str]] = field(default_factory=set)
    near: set[frozenset[str]] = field(default_factory=set)
    others: set[str] = field(default_factory=set)
    true_class: dict[str, str] = field(default_factory=dict)
    """Source folder of every image: ``MT_<Class>`` for tiles and their copies, ``other part`` for commutators."""


def build_copy(out: Path) -> Alterations:
    """Write the altered copy and return what was changed."""
    rng = np.random.default_rng(SEED)
    files = sorted(SOURCE.glob("MT_*/Imgs/*.jpg"))
    classes = sorted({path.parent.parent.name for path in files})
    flipped_indices = set(rng.choice(len(files), size=len(files) // 10, replace=False).tolist())
    altered, relative = Alterations(), []
    for index, path in enumerate(files):
        label = path.parent.parent.name
        if index in flipped_indices:
            label = str(rng.choice([name for name in classes if name != label]))
        target = out / label / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        relative.append(f"{label}/{path.name}")
        altered.true_class[relative[-1]] = path.parent.parent.name
        if index in flipped_indices:
            altered.flipped.add(relative[-1])
    chosen = rng.choice(len(files), size=40, replace=False).tolist()
    for number, index in enumerate(chosen):
        original = out / relative[index]
        image = Image.open(original)
        if number < 20:
            copy = original.with_name(f"copy_{number}_{original.name}")
            shutil.copyfile(original, copy)
            altered.exact.add(frozenset((relative[index], f"{original.parent.name}/{copy.name}")))
            altered.true_class[f"{original.parent.name}/{copy.name}"] = altered.true_class[relative[index]]
            continue
        copy = original.with_name(f"copy_{number}_{original.stem}.jpg" if number < 30 else f"copy_{number}_{original.stem}.png")
        if number < 30:
            image.save(copy, format="JPEG", quality=70)
        else:
            image.resize((int(image.width * 0.8), int(image.height * 0.8))).save(copy)
        altered.near.add(frozenset((relative[index], f"{original.parent.name}/{copy.name}")))
        altered.true_class[f"{original.parent.name}/{copy.name}"] = altered.true_class[relative[index]]
    # Drawn after the copies, so the flips and copies are those of runs before other parts were added.
    for path in rng.choice(other_part_files(), size=OTHER_PART_IMAGES, replace=False).tolist():
        target = out / OK_FOLDER / f"other_part_{Path(path).name}"
        shutil.copyfile(path, target)
        altered.others.add(f"{OK_FOLDER}/{target.name}")
        altered.true_class[f"{OK_FOLDER}/{target.name}"] = "other part"
    return altered


def other_part_files() -> list[str]:
    return [str(path) for path in sorted(OTHER_PART.glob("images/train/*.jpg"))]


def main() -> None:
    torch.set_num_threads(2)
    for dataset in (SOURCE, OTHER_PART):
        if not dataset.is_dir():
            sys.exit(f"{dataset} is missing; the benchmark needs the magnetic-tile and kolektorsdd datasets")
    scratch = Path(tempfile.mkdtemp(prefix="defectlab-check-"))
    try:
        altered = build_copy(scratch / "images")
        workspace = Workspace.open(scratch / "ws")
        workspace.create_project("tiles", "classification")
        import_path(workspace, "tiles", scratch / "images", format="folders")
        started = time.perf_counter()
        report = check_project(workspace, "tiles")
        seconds = time.perf_counter() - started
        figures = measure(workspace, report, altered)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    figures["check_seconds"] = round(seconds, 1)
    figures["command"] = "PYTHONPATH=src python benchmarks/check_benchmark.py"
    reverse = measure_reverse()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["data check"] = figures
    results["data check outliers, kolektorsdd with tiles"] = reverse
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps({"data check": figures, "reverse": reverse}, indent=2))


def measure(workspace: Workspace, report: dict, altered: Alterations) -> dict:
    flipped, exact, near, others = altered.flipped, altered.exact, altered.near, altered.others
    _, items, pixels = load_items(workspace, "tiles")
    scored = score_labels(items, pixels)
    tiles = [row for row, index in enumerate(scored.rows) if items[index].path not in others]
    truth = np.array([items[scored.rows[row]].path in flipped for row in tiles])
    badness = 1.0 - scored.quality[tiles]
    worst = np.argsort(-badness)[: len(flipped)]
    pairs = {kind: {frozenset((issue["path"], issue["other_path"])) for issue in report["issues"] if issue["kind"] == kind}
             for kind in ("exact_duplicate", "near_duplicate")}
    found = pairs["exact_duplicate"] | pairs["near_duplicate"]
    added = exact | near
    return {
        "images": report["images"],
        "flipped": len(flipped),
        "suspicious_label_auroc": round(float(roc_auc_score(truth, badness)), 4),
        "top_n_precision": round(float(truth[worst].mean()), 4),
        "flagged_by_cleanlab": report["counts"].get("suspicious_label", 0),
        "exact_copies_found": f"{len(exact & pairs['exact_duplicate'])} of {len(exact)}",
        "near_copies_found": f"{len(near & found)} of {len(near)}",
        "other_pairs_reported": len(found - added),
        "other_parts_labeled_suspicious": sum(issue["path"] in others for issue in report["issues"]
                                              if issue["kind"] == "suspicious_label"),
        **measure_outliers(items, pixels, report, altered),
        "counts": report["counts"],
        "notes": report["notes"],
    }


def measure_outliers(items: list, pixels: StoredPixels, report: dict, altered: Alterations) -> dict:
    """Return outlier recall on the other part, tiles flagged per true class, and the score ranges behind them."""
    others = altered.others
    flagged = {issue["path"] for issue in report["issues"] if issue["kind"] == "outlier"}
    tiles_flagged = Counter(altered.true_class[path] for path in flagged - others)
    # The report lists only flagged images; the scores of all images show how close the others came.
    scores = get_outlier_scores(image_features(pixels)).scores
    groups = [(altered.true_class[item.path], score) for item, score in zip(items, scores)]
    return {
        "other_part_images": len(others),
        "other_part_found_as_outliers": f"{len(flagged & others)} of {len(others)}",
        "tiles_flagged_as_outliers": sum(tiles_flagged.values()),
        "tiles_flagged_as_outliers_per_class": {name: tiles_flagged.get(name, 0)
                                                for name in sorted(set(altered.true_class.values()) - {"other part"})},
        "outlier_limit": OUTLIER_SCORE,
        "outlier_score_range_per_class": score_ranges(groups),
    }


def measure_reverse() -> dict:
    """Search outliers in the 320 kolektorsdd images with 10 random magnetic-tile images among them."""
    rng = np.random.default_rng(SEED)
    commutators = [Path(path) for path in other_part_files()]
    tiles = [Path(path) for path in rng.choice(sorted(map(str, SOURCE.glob("MT_*/Imgs/*.jpg"))),
                                               size=OTHER_PART_IMAGES, replace=False).tolist()]
    files = commutators + tiles
    started = time.perf_counter()
    scores = get_outlier_scores(image_features([decode_image(path.read_bytes(), source=str(path)).pixels
                                                for path in files]))
    seconds = time.perf_counter() - started
    flagged = set(find_outliers(scores).tolist())
    groups = [(commutator_group(path) if path in commutators else "tile", float(score))
              for path, score in zip(files, scores.scores)]
    found = Counter(group for index, (group, _) in enumerate(groups) if index in flagged)
    return {
        "images": len(files),
        "tiles_found_as_outliers": f"{found['tile']} of {len(tiles)}",
        "commutators_flagged_as_outliers": {"defective": found["commutator, defective"],
                                            "good": found["commutator, good"]},
        "outlier_score_range_per_class": score_ranges(groups),
        "seconds": round(seconds, 1),
    }


def commutator_group(path: Path) -> str:
    label = OTHER_PART / "labels" / "train" / f"{path.stem}.txt"
    return "commutator, defective" if label.read_text().strip() else "commutator, good"


def score_ranges(groups: list[tuple[str, float]]) -> dict[str, list[float]]:
    """Return ``{group: [lowest, highest]}`` outlier score, rounded to 2 decimals."""
    values: dict[str, list[float]] = {}
    for name, score in groups:
        values.setdefault(str(name), []).append(float(score))
    return {name: [round(min(scores), 2), round(max(scores), 2)] for name, scores in sorted(values.items())}


if __name__ == "__main__":
    main()
