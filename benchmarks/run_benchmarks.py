"""Benchmark the product on the real datasets and write benchmarks/results.json.

Usage (from the repository root, after ``bash scripts/setup.sh``)::

    .venv/bin/python benchmarks/run_benchmarks.py [--only NAME ...] [--peers]

Each benchmark goes through the same library calls as the CLI: a fresh
workspace, import with format detection, ``train_project`` with the settings
the auto-tuner picks, ``evaluate_model`` on the test split (images never used
in training or threshold calibration). Times are wall-clock seconds on this
machine with 2 threads. ``--peers`` also runs anomalib's PaDiM and PatchCore on
the very same train and test images, in the separate environment made by
``benchmarks/peers/setup_anomalib.sh``. ``deployment`` exports each model this
run trains as an ONNX bundle, times ONNX Runtime against PyTorch on the same
files and load-tests ``defectlab serve`` with the classifier's bundle
(``benchmarks/deployment.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from defectlab.data.importer import import_path
from defectlab.evaluation.runner import evaluate_model, load_stored_model
from defectlab.formats.records import OK_CLASS
from defectlab.prediction.predictor import Predictor
from defectlab.training.run import train_project
from defectlab.workspace import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deployment import compare_engines, load_test  # noqa: E402 - benchmarks/ is not a package

REPOSITORY = Path(__file__).resolve().parents[1]
DATASETS = REPOSITORY.parent / "shared" / "datasets"
RESULTS = REPOSITORY / "benchmarks" / "results.json"
PEER_PYTHON = REPOSITORY / ".venv-peers" / "bin" / "python"
LATENCY_IMAGES = 60
PEER_MODELS = "padim"
"""anomalib models run by --peers; PatchCore (about 37 minutes to train here) is left out unless added."""

logger = logging.getLogger("benchmarks")


def train_and_evaluate(workspace: Workspace, name: str, task: str, source: Path) -> dict[str, Any]:
    """Import ``source`` into a new project, train, evaluate on the test split; return the figures."""
    workspace.create_project(name, task)
    report = import_path(workspace, name, source)
    started = time.perf_counter()
    result = train_project(workspace, name)
    seconds = time.perf_counter() - started
    run = evaluate_model(workspace, result.model_id, split="test")
    figures = run.evaluation
    return {
        "model_id": result.model_id,
        "images_imported": report.added,
        "counts": result.counts,
        "training_seconds": round(seconds, 1),
        "test_images": figures.images,
        "accuracy": figures.accuracy,
        "escape_rate": figures.escape_rate,
        "overkill_rate": figures.overkill_rate,
        "auroc": figures.auroc,
        "recall_by_defect_class": run.recall_by_class,
        "threshold": result.threshold,
    }


def measure_latency(workspace: Workspace, model_id: int, source: Path) -> dict[str, Any]:
    """Time prediction of held-out files end to end (read, decode, pre-process, score), model already loaded."""
    artifact, images = load_stored_model(workspace, model_id)
    files = [source / image.path for image in images if image.split == "test"][:LATENCY_IMAGES]
    predictor = Predictor.from_artifact(artifact)
    list(predictor.predict_files(files[:2]))  # warm-up: first calls allocate buffers
    started = time.perf_counter()
    for path in files:
        list(predictor.predict_files([path]))
    per_image = (time.perf_counter() - started) / len(files)
    return {"images": len(files), "ms_per_image_one_at_a_time": round(per_image * 1000, 1)}


def _test_files(workspace: Workspace, model_id: int, source: Path) -> list[Path]:
    _, images = load_stored_model(workspace, model_id)
    return [source / image.path for image in images if image.split == "test"]


def write_peer_split(workspace: Workspace, model_id: int, source: Path, out: Path) -> Path:
    """Write the model's own good training images and test images as a split file for the peer benchmark."""
    artifact, images = load_stored_model(workspace, model_id)
    by_id = {image.image_id: image for image in images}
    split = {
        "dataset": source.name,
        "train": [str(source / by_id[i].path) for i in artifact["image_ids"]],
        "test": [{"path": str(source / image.path), "is_defect": image.label != OK_CLASS}
                 for image in images if image.split == "test" and image.label is not None],
    }
    out.write_text(json.dumps(split, indent=1))
    return out


def run_peers(split_file: Path, out: Path) -> dict[str, Any]:
    if not PEER_PYTHON.exists():
        return {"skipped": f"{PEER_PYTHON} is missing; run benchmarks/peers/setup_anomalib.sh first"}
    command = [str(PEER_PYTHON), str(REPOSITORY / "benchmarks" / "peers" / "anomalib_run.py"),
               "--split", str(split_file), "--models", PEER_MODELS, "--out", str(out)]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        return {"failed": completed.stderr[-2000:]}
    return _without_long_lists(json.loads(out.read_text()))


def _without_long_lists(value: Any) -> Any:
    """Drop per-image score lists from the peer's output, keeping its figures and settings."""
    if isinstance(value, dict):
        return {key: _without_long_lists(item) for key, item in value.items()
                if not (isinstance(item, list) and len(item) > 20)}
    return value


def memory_benchmark(scratch: Path) -> dict[str, Any]:
    """Train a classifier on 2,000 generated 256x256 images in a child process and record its peak memory."""
    code = (
        "import json, resource, sys, time\n"
        "from pathlib import Path\n"
        "from defectlab.samples import write_class_folders\n"
        "from defectlab.data.importer import import_path\n"
        "from defectlab.training.run import train_project\n"
        "from defectlab.workspace import Workspace\n"
        "root = Path(sys.argv[1])\n"
        "write_class_folders(root / 'images', good=1400, per_defect=300, size=256, seed=7)\n"
        "workspace = Workspace.open(root / 'ws')\n"
        "workspace.create_project('many', 'classification')\n"
        "import_path(workspace, 'many', root / 'images')\n"
        "started = time.perf_counter()\n"
        "result = train_project(workspace, 'many')\n"
        "print(json.dumps({'training_seconds': round(time.perf_counter() - started, 1),\n"
        "                  'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code, str(scratch)], capture_output=True, text=True)
    if completed.returncode != 0:
        return {"failed": completed.stderr[-2000:]}
    return {"images": 2000, **json.loads(completed.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", help="mt-classification, mt-anomaly, kolektor-anomaly, memory, deployment")
    parser.add_argument("--peers", action="store_true", help="also run anomalib on the same images")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(2)
    wanted = set(arguments.only or ["mt-classification", "mt-anomaly", "kolektor-anomaly", "memory", "deployment"])
    if not DATASETS.is_dir():
        sys.exit(f"{DATASETS} is missing; the benchmarks need the real datasets")

    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    scratch = Path(tempfile.mkdtemp(prefix="defectlab-bench-"))
    workspace = Workspace.open(scratch / "ws")
    try:
        _run_selected(wanted, arguments.peers, workspace, scratch, results)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["machine"] = {"cpus": len(__import__("os").sched_getaffinity(0)), "torch_threads": 2,
                          "python": platform.python_version(), "torch": torch.__version__}
    results["command"] = "python " + " ".join(["benchmarks/run_benchmarks.py", *sys.argv[1:]])
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(results, indent=2, default=str))


def _run_selected(wanted: set[str], peers: bool, workspace: Workspace, scratch: Path,
                  results: dict[str, Any]) -> None:
    tiles = DATASETS / "magnetic-tile"
    if "mt-classification" in wanted:
        figures = train_and_evaluate(workspace, "mt-classification", "classification", tiles)
        figures["latency"] = measure_latency(workspace, figures["model_id"], tiles)
        if "deployment" in wanted:
            figures["onnx"] = compare_engines(workspace, figures["model_id"], tiles, scratch / "mt-classification")
            files = _test_files(workspace, figures["model_id"], tiles)
            results["inference server load"] = load_test(scratch / "mt-classification", files)
        results["magnetic-tile classification"] = figures
    if "mt-anomaly" in wanted:
        figures = train_and_evaluate(workspace, "mt-anomaly", "anomaly", tiles)
        figures["latency"] = measure_latency(workspace, figures["model_id"], tiles)
        if "deployment" in wanted:
            figures["onnx"] = compare_engines(workspace, figures["model_id"], tiles, scratch / "mt-anomaly")
        if peers:
            split_file = write_peer_split(workspace, figures["model_id"], tiles, scratch / "mt-split.json")
            figures["anomalib"] = run_peers(split_file, scratch / "mt-peers.json")
        results["magnetic-tile anomaly"] = figures
    if "kolektor-anomaly" in wanted:
        kolektor = DATASETS / "kolektorsdd"
        figures = train_and_evaluate(workspace, "kolektor-anomaly", "anomaly", kolektor)
        figures["latency"] = measure_latency(workspace, figures["model_id"], kolektor)
        if "deployment" in wanted:
            figures["onnx"] = compare_engines(workspace, figures["model_id"], kolektor, scratch / "kolektor-anomaly")
        results["kolektorsdd anomaly"] = figures
    if "memory" in wanted:
        results["training memory"] = memory_benchmark(scratch / "memory")


if __name__ == "__main__":
    main()
