"""Measure the classification and anomaly models on the real datasets in ../shared/datasets.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/dev_models.py mt-anomaly --eval dev
    PYTHONPATH=src python benchmarks/dev_models.py mt-anomaly --eval test
    PYTHONPATH=src python benchmarks/dev_models.py kolektor-anomaly --eval test
    PYTHONPATH=src python benchmarks/dev_models.py mt-classification --eval test

Every run uses 2 CPU threads. ``--eval dev`` scores images split off the training
part and is the only mode to tune settings with; ``--eval test`` trains on the
whole training part and scores the held-out test split (25 %, stratified, seed 0),
which must never guide a setting. Times are wall-clock seconds and include
decoding the JPEG files, so they vary with other load on the machine.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from defectlab.images.decode import decode_image
from defectlab.training.autotune import ImageStats, plan_training

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
MT_ROOT = DATASETS / "magnetic-tile"
KOLEKTOR_ROOT = DATASETS / "kolektorsdd"
MT_CLASSES = ("Free", "Blowhole", "Break", "Crack", "Fray", "Uneven")
SEED = 0
TEST_FRACTION = 0.25


class LazyImages(Sequence):
    """Decode image files on access, the way training reads a snapshot."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        path = self.paths[index]
        return decode_image(path.read_bytes(), source=str(path)).pixels


def magnetic_tile() -> tuple[list[Path], list[str]]:
    """Return MT image paths and class names ("ok" for MT_Free)."""
    paths, labels = [], []
    for name in MT_CLASSES:
        for path in sorted((MT_ROOT / f"MT_{name}" / "Imgs").glob("*.jpg")):
            paths.append(path)
            labels.append("ok" if name == "Free" else name)
    return paths, labels


def kolektor() -> tuple[list[Path], list[str]]:
    """Return KolektorSDD image paths and labels ("ok" when the label file is empty)."""
    paths, labels = [], []
    for path in sorted((KOLEKTOR_ROOT / "images" / "train").glob("*.jpg")):
        label_file = KOLEKTOR_ROOT / "labels" / "train" / f"{path.stem}.txt"
        paths.append(path)
        labels.append("defect" if label_file.read_text().strip() else "ok")
    return paths, labels


def split_test(paths: list[Path], labels: list[str]) -> tuple[list[int], list[int]]:
    """Return (train-part indices, test indices), stratified by label."""
    indices = np.arange(len(paths))
    train, test = train_test_split(indices, test_size=TEST_FRACTION, stratify=labels, random_state=SEED)
    return sorted(train.tolist()), sorted(test.tolist())


def image_stats(paths: Sequence[Path], labels: Sequence[str], split: str) -> list[ImageStats]:
    from PIL import Image

    stats = []
    for path, label in zip(paths, labels):
        with Image.open(path) as image:
            width, height = image.size
        stats.append(ImageStats(width=width, height=height, channels=1, bit_depth=8, label=label, split=split))
    return stats


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def run_anomaly(paths: list[Path], labels: list[str], *, evaluate: str, test_all_defects: bool) -> None:
    from defectlab.training.anomaly import train_anomaly_detector

    train_part, test = split_test(paths, labels)
    goods = [i for i in train_part if labels[i] == "ok"]
    defects = sorted(i for i in range(len(paths)) if labels[i] != "ok")
    # Half of the defective images may guide tuning (dev); the other half never does.
    dev_defects, unseen_defects = train_test_split(defects, test_size=0.5, random_state=SEED, stratify=[labels[i] for i in defects])
    if evaluate == "dev":
        train_goods, dev_goods = train_test_split(goods, test_size=0.2, random_state=SEED)
        eval_good, eval_defect = dev_goods, sorted(dev_defects)
    else:
        train_goods = goods
        eval_good = [i for i in test if labels[i] == "ok"]
        eval_defect = defects if test_all_defects else sorted(unseen_defects)

    plan = plan_training(image_stats([paths[i] for i in train_goods], ["ok"] * len(train_goods), "train"), "anomaly")
    print(f"plan: input {plan.input_size}, memory bank {plan.memory_bank_size}")
    started = time.perf_counter()
    model = train_anomaly_detector(LazyImages([paths[i] for i in train_goods]), plan)
    train_seconds = time.perf_counter() - started

    report_anomaly(model, paths, eval_good, eval_defect, train_seconds, len(train_goods))
    if evaluate == "test" and test_all_defects:
        report_anomaly(model, paths, eval_good, sorted(unseen_defects), None, len(train_goods), title="unseen defects only")


def report_anomaly(model, paths, good, defect, train_seconds, train_count, *, title="") -> None:
    started = time.perf_counter()
    result = model.predict(LazyImages([paths[i] for i in good + defect]), heatmaps=True)
    per_image_ms = (time.perf_counter() - started) / (len(good) + len(defect)) * 1000
    truth = np.r_[np.zeros(len(good)), np.ones(len(defect))]
    auroc = roc_auc_score(truth, result.scores)
    escapes = int((~result.is_defect[len(good):]).sum())
    overkills = int(result.is_defect[: len(good)].sum())
    if train_seconds is not None:
        print(f"trained on {train_count} good images in {train_seconds:.1f} s; peak RSS {peak_rss_gb():.2f} GB")
    print(
        f"{title or 'evaluation'}: {len(good)} good + {len(defect)} defective: image AUROC {auroc:.4f}; "
        f"escapes {escapes}/{len(defect)}, overkill {overkills}/{len(good)} at the calibrated threshold; "
        f"prediction {per_image_ms:.1f} ms/image with heatmaps (decode included)"
    )


def run_classification(paths: list[Path], labels: list[str], *, evaluate: str) -> None:
    """Train the default patch head, with the magnetic-tile defect masks, and score dev or test images."""
    from defectlab.training.patches import train_patch_classifier

    train_part, test = split_test(paths, labels)
    train, dev = train_test_split(train_part, test_size=0.15, random_state=SEED, stratify=[labels[i] for i in train_part])
    if evaluate == "test":
        evaluation = test
    else:
        evaluation = dev
    class_names = sorted(set(labels), key=lambda name: (name != "ok", name))
    index = {name: position for position, name in enumerate(class_names)}
    stats = image_stats([paths[i] for i in train], [labels[i] for i in train], "train") + image_stats(
        [paths[i] for i in dev], [labels[i] for i in dev], "dev"
    )
    plan = plan_training(stats, "classification")
    print(f"plan: input {plan.input_size}, epochs {plan.epochs}, weights {plan.class_weights}")
    started = time.perf_counter()
    model = train_patch_classifier(
        LazyImages([paths[i] for i in train]), [index[labels[i]] for i in train], class_names, plan,
        dev_images=LazyImages([paths[i] for i in dev]), dev_labels=[index[labels[i]] for i in dev],
        masks=[defect_mask(paths[i]) if labels[i] != "ok" else None for i in train],
    )
    train_seconds = time.perf_counter() - started
    print(f"trained on {len(train)} images (+{len(dev)} dev) in {train_seconds:.1f} s; "
          f"threshold {model.threshold:.3f}; peak RSS {peak_rss_gb():.2f} GB")
    for entry in model.loss_history:
        print("  epoch", entry)

    started = time.perf_counter()
    probabilities = model.predict_proba(LazyImages([paths[i] for i in evaluation]))
    predicted = [predicted_label(row, score > model.threshold, class_names)
                 for row, score in zip(probabilities, model.defect_scores(probabilities))]
    per_image_ms = (time.perf_counter() - started) / len(evaluation) * 1000
    truth = [labels[i] for i in evaluation]
    accuracy = np.mean([p == t for p, t in zip(predicted, truth)])
    defective = [k for k, t in enumerate(truth) if t != "ok"]
    escapes = sum(predicted[k] == "ok" for k in defective)
    overkills = sum(predicted[k] != "ok" for k, t in enumerate(truth) if t == "ok")
    print(f"{evaluate}: {len(evaluation)} images: accuracy {accuracy:.4f}; escape rate {escapes}/{len(defective)} "
          f"= {escapes / max(1, len(defective)):.4f}; overkill {overkills}/{len(truth) - len(defective)}; "
          f"prediction {per_image_ms:.1f} ms/image (decode included)")


def defect_mask(path: Path) -> np.ndarray | None:
    """Return the magnetic-tile mask beside an image (same name, .png) as booleans, or None."""
    mask_path = path.with_suffix(".png")
    if not mask_path.exists():
        return None
    return decode_image(mask_path.read_bytes(), source=str(mask_path)).pixels > 0


def predicted_label(probabilities: np.ndarray, is_defect: bool, class_names: list[str]) -> str:
    """Return ``ok`` unless defective, else the most probable defect class."""
    if not is_defect:
        return "ok"
    ranked = sorted(range(len(class_names)), key=lambda k: -probabilities[k])
    return next(class_names[k] for k in ranked if class_names[k] != "ok")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", choices=["mt-anomaly", "kolektor-anomaly", "mt-classification"])
    parser.add_argument("--eval", choices=["dev", "test"], default="dev", help="score dev images (tuning) or the test split")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    if args.benchmark == "mt-anomaly":
        run_anomaly(*magnetic_tile(), evaluate=args.eval, test_all_defects=True)
    elif args.benchmark == "kolektor-anomaly":
        run_anomaly(*kolektor(), evaluate=args.eval, test_all_defects=True)
    elif args.benchmark == "mt-classification":
        run_classification(*magnetic_tile(), evaluate=args.eval)


if __name__ == "__main__":
    main(sys.argv[1:])
