"""Benchmark large images with tiny defects: train from a handful, find a corner defect, measure peak memory.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/large_image.py

It writes nine generated 5003 x 5001 grayscale training images, six with
6 x 6 bright pits (three of them at an edge or a corner) and three without,
trains a segmentation project with the auto-tuner's settings, and exports the
model file. Then it predicts a 5003 x 5001 image and an 8000 x 2000 image,
each with a 6 x 6 pit 3 pixels from the bottom-right corner. Each runs in a
fresh process, so its peak memory is that of prediction alone. It records
whether the pit was found, the seconds, the peak resident memory and the
1-minute load average before and after each step, because other work on the
machine slows both steps. Results go to ``benchmarks/large_image.json``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from defectlab.data.importer import import_path
from defectlab.prediction.outputs import write_model_file
from defectlab.samples import draw_large_part
from defectlab.training.run import train_project
from defectlab.workspace import Workspace

OUT = Path(__file__).resolve().parent / "large_image.json"
TRAINING_SIZE = (5001, 5003)
"""Height and width of the training images."""
TRAINING = [[(200, 300), (2600, 1900)], [(4995, 4997)], [(0, 0), (1800, 3700)], [(50, 4200)], [(3500, 20)],
            [(4100, 1200), (900, 2600)], [], [], []]
"""Top-left corners of the 6 x 6 pits, one list per training image; the last three images are good."""
SIZES = [(5001, 5003), (2000, 8000)]


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--predict":
        print(json.dumps(predict_one(Path(sys.argv[2]), Path(sys.argv[3]))))
        return
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        load_before = _load()
        started = time.perf_counter()
        model = train(root)
        seconds = time.perf_counter() - started
        training = {"training_seconds": round(seconds, 1), "load_average_1min": [load_before, _load()]}
        results = []
        for height, width in SIZES:
            image = root / f"test_{width}x{height}.png"
            pixels, _ = draw_large_part(np.random.default_rng(1), height, width, [(height - 9, width - 9)])
            Image.fromarray(pixels).save(image)
            load_before = _load()
            child = subprocess.run([sys.executable, __file__, "--predict", str(model), str(image)],
                                   capture_output=True, text=True, check=True)
            results.append({"size": [width, height], **json.loads(child.stdout.strip().splitlines()[-1]),
                            "load_average_1min": [load_before, _load()]})
    record = {"command": "PYTHONPATH=src python benchmarks/large_image.py", "cpus": os.cpu_count(),
              "machine": platform.processor() or platform.machine(), "training_size": list(TRAINING_SIZE[::-1]),
              **training, "predictions": results}
    OUT.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


def train(root: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = root / "images" / "pit"
    folder.mkdir(parents=True)
    (root / "images" / "good").mkdir()
    for index, pits in enumerate(TRAINING):
        pixels, mask = draw_large_part(rng, *TRAINING_SIZE, pits)
        if pits:
            Image.fromarray(pixels).save(folder / f"{index:02d}.png")
            Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{index:02d}_mask.png")
        else:
            Image.fromarray(pixels).save(root / "images" / "good" / f"{index:02d}.png")
    workspace = Workspace.open(root / "ws")
    workspace.create_project("plates", "segmentation")
    import_path(workspace, "plates", root / "images", split="train")
    result = train_project(workspace, "plates")
    print("\n".join(result.plan.reasons))
    model = root / "model.pt"
    write_model_file(workspace, result.model_id, model)
    return model


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def predict_one(model: Path, image: Path) -> dict:
    from defectlab.prediction.predictor import Predictor

    predictor = Predictor.load(model)
    started = time.perf_counter()
    prediction = next(iter(predictor.predict_files([image])))
    seconds = time.perf_counter() - started
    height, width = prediction.mask.shape
    counting = [region for region in prediction.regions if region["counts"]]
    found = any(region["box"][2] >= width - 6 and region["box"][3] >= height - 6 for region in counting)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"found_corner_pit": found, "regions": counting, "seconds": round(seconds, 1),
            "peak_memory_mb": round(peak)}


if __name__ == "__main__":
    main()
