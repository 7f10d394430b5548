"""Training and the model report in the browser: loss curves while the model trains, when it is done, and on
its report, with the diagnosis."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from defectlab.data.importer import import_path

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api").expect


@pytest.fixture(scope="module")
def spots(server, tmp_path_factory) -> str:
    """Create classification project ``spots``: 14 good 48x48 noise images and 14 with a bright square."""
    folder = tmp_path_factory.mktemp("spots")
    generator = np.random.default_rng(3)
    for name in ("ok", "spot"):
        (folder / name).mkdir()
        for number in range(14):
            pixels = generator.normal(110, 8, (48, 48))
            if name == "spot":
                row, column = generator.integers(6, 34, size=2)
                pixels[row:row + 8, column:column + 8] = 235
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / name / f"{name}_{number:02d}.png")
    server.workspace.create_project("spots", "classification", ["spot"])
    import_path(server.workspace, "spots", folder)
    return "spots"


def test_training_draws_loss_curves(page, spots, shoot) -> None:
    page.goto(f"/projects/{spots}/train")
    page.click("#advanced summary")
    page.fill("#advanced-settings input[name=epochs]", "30")
    page.click("#train")
    running = page.locator(".job.running svg.chart path[data-name=train]")
    expect(running).to_be_visible(timeout=120_000)
    shoot(page, "1-live-curves")

    expect(page.locator(".job.succeeded")).to_be_visible(timeout=300_000)
    card = page.locator(".job.succeeded")
    expect(card.locator("svg.chart path[data-name=train]")).to_have_count(1)
    expect(card.locator("svg.chart path[data-name=dev]")).to_have_count(1)
    expect(card.locator(".legend")).to_contain_text("dev loss")
    thin = card.locator("ul.diagnosis li[data-kind=thin_class]")
    expect(thin).to_have_count(2)
    expect(thin.first).to_contain_text("Class ok has only 14 labeled images")
    expect(thin.first).to_contain_text("about 6 more good images")
    shoot(page, "2-done")

    page.click("text=Open its report")
    expect(page.locator("#training svg#loss-chart path[data-name=train]")).to_have_count(1)
    expect(page.locator("#training #diagnosis li[data-kind=thin_class]")).to_have_count(2)
    shoot(page, "3-report-curves")
