"""Benchmark ``defectlab check`` on a copy of magnetic tile with known flipped labels and copies.

Usage (from the repository root)::

    PYTHONPATH=src .venv/bin/python benchmarks/check_benchmark.py

A copy of ``../shared/datasets/magnetic-tile`` (class folders, written to a
temporary folder) gets 10 % of its labels flipped to another class at random
(seed 0), 20 exact copies and 20 near copies (10 re-encoded as JPEG at quality 70,
10 resized to 80 %) of random images. The copy is imported into a fresh
workspace and checked. The figures go to ``benchmarks/results.json`` under
"data check":

- the AUROC of the suspicious-label score (1 - label quality) between flipped and
  clean images, and the share of truly flipped images among the N worst (N = flipped);
- how many exact and near copies were found, and how many reported pairs were
  neither an added copy nor a pair of images the dataset already holds twice;
- the wall-clock seconds of ``check_project``.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from defectlab.data.importer import import_path
from defectlab.quality.check import check_project, load_items, score_labels
from defectlab.workspace import Workspace

REPOSITORY = Path(__file__).resolve().parents[1]
SOURCE = REPOSITORY.parent / "shared" / "datasets" / "magnetic-tile"
RESULTS = REPOSITORY / "benchmarks" / "results.json"
SEED = 0


def build_copy(out: Path) -> tuple[set[str], set[frozenset[str]], set[frozenset[str]]]:
    """Write the altered copy; return flipped paths, exact-copy pairs and near-copy pairs (relative paths)."""
    rng = np.random.default_rng(SEED)
    files = sorted(SOURCE.glob("MT_*/Imgs/*.jpg"))
    classes = sorted({path.parent.parent.name for path in files})
    flipped_indices = set(rng.choice(len(files), size=len(files) // 10, replace=False).tolist())
    flipped, relative = set(), []
    for index, path in enumerate(files):
        label = path.parent.parent.name
        if index in flipped_indices:
            label = str(rng.choice([name for name in classes if name != label]))
        target = out / label / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        relative.append(f"{label}/{path.name}")
        if index in flipped_indices:
            flipped.add(relative[-1])
    chosen = rng.choice(len(files), size=40, replace=False).tolist()
    exact, near = set(), set()
    for number, index in enumerate(chosen):
        original = out / relative[index]
        image = Image.open(original)
        if number < 20:
            copy = original.with_name(f"copy_{number}_{original.name}")
            shutil.copyfile(original, copy)
            exact.add(frozenset((relative[index], f"{original.parent.name}/{copy.name}")))
            continue
        copy = original.with_name(f"copy_{number}_{original.stem}.jpg" if number < 30 else f"copy_{number}_{original.stem}.png")
        if number < 30:
            image.save(copy, format="JPEG", quality=70)
        else:
            image.resize((int(image.width * 0.8), int(image.height * 0.8))).save(copy)
        near.add(frozenset((relative[index], f"{original.parent.name}/{copy.name}")))
    return flipped, exact, near


def main() -> None:
    torch.set_num_threads(2)
    if not SOURCE.is_dir():
        sys.exit(f"{SOURCE} is missing; the benchmark needs the magnetic-tile dataset")
    scratch = Path(tempfile.mkdtemp(prefix="defectlab-check-"))
    try:
        flipped, exact, near = build_copy(scratch / "images")
        workspace = Workspace.open(scratch / "ws")
        workspace.create_project("tiles", "classification")
        import_path(workspace, "tiles", scratch / "images", format="folders")
        started = time.perf_counter()
        report = check_project(workspace, "tiles")
        seconds = time.perf_counter() - started
        figures = measure(workspace, report, flipped, exact, near)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    figures["check_seconds"] = round(seconds, 1)
    figures["command"] = "python benchmarks/check_benchmark.py"
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["data check"] = figures
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(figures, indent=2))


def measure(workspace: Workspace, report: dict, flipped: set[str], exact: set, near: set) -> dict:
    _, items, pixels = load_items(workspace, "tiles")
    usable, _, _, _, quality = score_labels(items, pixels)
    truth = np.array([items[index].path in flipped for index in usable])
    badness = 1.0 - quality
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
        "counts": report["counts"],
    }


if __name__ == "__main__":
    main()
