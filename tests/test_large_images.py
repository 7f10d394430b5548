"""Large images with tiny defects: trained and predicted on tiles at native resolution, corners included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.data.importer import import_path
from defectlab.evaluation.runner import load_stored_model
from defectlab.prediction.predictor import Predictor
from defectlab.samples import draw_large_part
from defectlab.training.run import train_project


def write_pits(folder: Path, name: str, pixels: np.ndarray, mask: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(folder / f"{name}.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{name}_mask.png")


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Predictor:
    """Train a segmentation model from six 2400 x 2200 images with 6 x 6 pits (three at edges) and three without."""
    from defectlab.workspace import Workspace

    root = tmp_path_factory.mktemp("large")
    rng = np.random.default_rng(0)
    places = [[(200, 300), (1100, 900)], [(2394, 2194)], [(0, 0), (800, 700)], [(50, 1400)], [(1500, 20)],
              [(700, 1200), (300, 600)]]
    for index, pits in enumerate(places):
        pixels, mask = draw_large_part(rng, 2400, 2200, pits)
        write_pits(root / "images" / "pit", f"{index:02d}", pixels, mask)
    (root / "images" / "good").mkdir()
    for index in range(3):
        pixels, _ = draw_large_part(rng, 2400, 2200, [])
        Image.fromarray(pixels).save(root / "images" / "good" / f"{index:02d}.png")
    workspace = Workspace.open(root / "ws")
    workspace.create_project("plates", "segmentation")
    import_path(workspace, "plates", root / "images", split="train")
    result = train_project(workspace, "plates")
    assert "tiles at native resolution" in " ".join(result.plan.reasons)
    artifact, _ = load_stored_model(workspace, result.model_id)
    workspace.close()
    return Predictor.from_artifact(artifact)


@pytest.mark.slow
@pytest.mark.parametrize(("height", "width"), [(5001, 5003), (2000, 8000)])
def test_corner_pit_found_at_full_size(predictor: Predictor, height: int, width: int) -> None:
    rng = np.random.default_rng(1)
    corner = (height - 9, width - 9)
    pixels, _ = draw_large_part(rng, height, width, [corner])

    prediction = predictor.predict([pixels])[0]

    assert prediction.is_defect
    assert prediction.mask.shape == (height, width)
    counting = [region for region in prediction.regions if region["counts"]]
    assert len(counting) == 1
    x0, y0, x1, y1 = counting[0]["box"]
    assert x0 <= corner[1] + 1
    assert x1 >= corner[1] + 5
    assert y0 <= corner[0] + 1
    assert y1 >= corner[0] + 5
