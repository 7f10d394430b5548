"""Training and the model report in the browser.

The tests cover loss curves while a model trains, when it is done and on its report, the diagnosis, the
precision-recall curve, and the label, prediction and heatmap drawn over the report's images.
"""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import delete

from defectlab.data.importer import import_path
from defectlab.workspace.schema import Job

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


def test_running_job_draws_live_curves(page, server, spots, shoot) -> None:
    # A real training of these few images can end before the page polls, so the running job is
    # recorded here, with this test process as its worker, and ended once the page has drawn it.
    curves = {"train": [0.9, 0.6, 0.4], "dev": [1.0, 0.7, 0.65]}
    state = {"project": spots, "options": {}, "pid": os.getpid(), "host": socket.gethostname(),
             "progress": {"done": 3, "total": 30, "message": "Training", "seconds": 4.2, "loss_curves": curves}}
    with server.workspace.session() as session:
        project_id = server.workspace.get_project(session, spots).id
        job = Job(project_id=project_id, kind="train", status="running", message=json.dumps(state))
        session.add(job)
        session.flush()
        job_id = job.id

    page.goto(f"/projects/{spots}/train")
    running = page.locator(f".job.running[data-id='{job_id}'] svg.chart")
    expect(running.locator("path[data-name=train]")).to_have_count(1)
    expect(running.locator("path[data-name=dev]")).to_have_count(1)
    expect(page.locator(f".job.running[data-id='{job_id}']")).to_contain_text("3 of 30")
    shoot(page, "1-live-curves")
    with server.workspace.session() as session:
        session.execute(delete(Job).where(Job.id == job_id))


def test_training_draws_loss_curves(page, spots, shoot) -> None:
    page.goto(f"/projects/{spots}/train")
    page.click("#advanced summary")
    page.fill("#advanced-settings input[name=epochs]", "30")
    page.click("#train")
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

    page.click("#evaluate")
    expect(page.locator("#report")).to_be_visible(timeout=180_000)
    expect(page.locator("#pr-chart path[data-name=all]")).to_have_count(1)
    expect(page.locator("#precision-recall .legend")).to_contain_text("this model's threshold")
    page.locator("#confusion button[data-row=spot][data-column=spot]").click()
    thumbs = page.locator("#chosen-images .thumb")
    expect(thumbs.first).to_be_visible()
    expect(thumbs.first.locator(".badge.label")).to_have_text("label spot")
    expect(thumbs.first.locator(".badge.predicted")).to_have_text("predicted spot")
    shoot(page, "4-report-evaluated")


@pytest.fixture(scope="module")
def cracks(server, tmp_path_factory) -> str:
    """Create anomaly project ``cracks``: 12 good 32x32 images and 4 with a bright crack, splits set by hand."""
    from sqlalchemy import update

    from defectlab.data.labels import list_images
    from defectlab.workspace.schema import Image as ImageRow

    folder = tmp_path_factory.mktemp("cracks")
    generator = np.random.default_rng(4)
    for name, count in (("good", 12), ("crack", 4)):
        (folder / name).mkdir()
        for number in range(count):
            pixels = generator.integers(100, 140, (32, 32)).astype(np.uint8)
            if name == "crack":
                pixels[10:22, 15:17] = 250
            Image.fromarray(pixels).save(folder / name / f"{number:02d}.png")
    workspace = server.workspace
    workspace.create_project("cracks", "anomaly")
    import_path(workspace, "cracks", folder)
    splits = {**{f"good/{n:02d}.png": "train" for n in range(8)}, "good/08.png": "dev", "good/09.png": "dev",
              "crack/02.png": "dev", "crack/03.png": "dev"}
    with workspace.session() as session:
        for row in list_images(workspace, "cracks"):
            session.execute(update(ImageRow).where(ImageRow.id == row["id"]).values(split=splits.get(row["path"], "test")))
    return "cracks"


def test_report_overlays_anomaly_heatmap(page, cracks, shoot) -> None:
    page.goto(f"/projects/{cracks}/train")
    page.click("#train")
    expect(page.locator(".job.succeeded")).to_be_visible(timeout=300_000)
    page.click("text=Open its report")
    page.click("#evaluate")
    expect(page.locator("#report")).to_be_visible(timeout=180_000)
    expect(page.locator("#pr-chart path[data-name=all]")).to_have_count(1)

    page.locator("#confusion button[data-row=anomaly][data-column=anomaly]").click()
    thumbs = page.locator("#chosen-images .thumb")
    expect(thumbs).to_have_count(2)
    expect(thumbs.first.locator("svg.overlay rect.heat").first).to_be_attached()
    shoot(page, "1-heatmaps")
    expect(page.locator("#training")).to_contain_text("No loss curves: an anomaly model learns from good images")
