"""The data browser's prediction filters (outcome and score range of a model's newest evaluation) and tags."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from defectlab.data.importer import import_path

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api").expect


@pytest.fixture(scope="module")
def dots(server, tmp_path_factory) -> str:
    """Create classification project ``dots``: 12 good 48x48 noise images and 12 with a faint dot, hard to tell apart."""
    folder = tmp_path_factory.mktemp("dots")
    generator = np.random.default_rng(9)
    for name in ("ok", "dot"):
        (folder / name).mkdir()
        for number in range(12):
            pixels = generator.normal(110, 12, (48, 48))
            if name == "dot":
                row, column = generator.integers(6, 38, size=2)
                pixels[row:row + 4, column:column + 4] += 25
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / name / f"{name}_{number:02d}.png")
    server.workspace.create_project("dots", "classification", ["dot"])
    import_path(server.workspace, "dots", folder)
    return "dots"


def finished_job(page, csrf, url: str, body: dict) -> dict:
    """Start a job through the API with the page's session and return it once it has ended."""
    started = page.request.post(url, data=body, headers=csrf(page))
    assert started.status == 202, started.text()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = page.request.get(f"/api/jobs/{started.json()['id']}").json()
        if job["status"] != "running":
            assert job["status"] == "succeeded", job["error"]
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {started.json()['id']} still runs after 300 s")


def test_filter_by_outcome_and_score(page, dots, csrf, shoot) -> None:
    trained = finished_job(page, csrf, f"/api/projects/{dots}/training", {"settings": {"epochs": 3}})
    model_id = trained["result"]["model_id"]
    evaluation = finished_job(page, csrf, f"/api/projects/{dots}/models/{model_id}/evaluations", {"split": "train"})
    rows = evaluation["result"]["images"]

    page.goto(f"/projects/{dots}")
    page.select_option("select[name=model]", str(model_id))
    expect(page.locator(".thumb")).to_have_count(len(rows))
    assert f"model={model_id}" in page.url
    for outcome in ("correct", "escape", "overkill"):
        page.select_option("select[name=outcome]", outcome)
        expected = sum(row["outcome"] == outcome for row in rows)
        expect(page.locator(".thumb")).to_have_count(expected)
        if expected:
            expect(page.locator(".thumb .chip.outcome").first).to_contain_text(outcome)
    shoot(page, "1-outcome")

    page.select_option("select[name=outcome]", "")
    expect(page.locator(".thumb")).to_have_count(len(rows))
    middle = sorted(row["score"] for row in rows)[len(rows) // 2]
    page.fill("input[name=score_min]", str(middle))
    page.locator("input[name=score_min]").dispatch_event("change")
    expect(page.locator(".thumb")).to_have_count(sum(row["score"] >= middle for row in rows))
    assert f"score_min={middle}" in page.url
    shoot(page, "2-score")


def test_add_tag_and_filter(page, dots, shoot) -> None:
    page.goto(f"/projects/{dots}")
    expect(page.locator(".thumb")).to_have_count(24)
    page.locator(".thumb input[type=checkbox]").nth(0).check()
    page.locator(".thumb input[type=checkbox]").nth(3).check()
    page.fill("input[name=bulk-tag]", "<b>recheck</b>")
    page.click("#add-tag")
    expect(page.locator("#message")).to_contain_text("2 of 2 images changed")
    expect(page.locator(".thumb .chip.tag")).to_have_count(2)
    expect(page.locator(".thumb .chip.tag").first).to_have_text("# <b>recheck</b>")
    expect(page.locator(".thumb .chip.tag b")).to_have_count(0)

    page.select_option("select[name=tag]", "<b>recheck</b>")
    expect(page.locator(".thumb")).to_have_count(2)
    shoot(page, "1-tagged")
