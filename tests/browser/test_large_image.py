"""An 8000x8000 image in the labeling page: it opens, zooms to pixel level and takes an exact 4x4 box."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from defectlab.data.annotations import read_annotations
from defectlab.data.importer import import_path
from defectlab.data.labels import list_images

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api").expect

SIDE = 8000
DEFECT = (4000, 4000, 4004, 4004)


@pytest.fixture(scope="module")
def wafer(server, tmp_path_factory) -> int:
    """Import one 8000x8000 grayscale image with a dark 4x4 defect at ``DEFECT``; return its id."""
    folder = tmp_path_factory.mktemp("wafer") / "images"
    folder.mkdir()
    pixels = np.full((SIDE, SIDE), 160, dtype=np.uint8)
    pixels[::50, :] = 120
    x0, y0, x1, y1 = DEFECT
    pixels[y0:y1, x0:x1] = 20
    Image.fromarray(pixels).save(folder / "wafer.png", compress_level=1)
    server.workspace.create_project("wafers", "detection", ["pit"])
    import_path(server.workspace, "wafers", folder, format="folders")
    return list_images(server.workspace, "wafers")[0]["id"]


def test_4x4_box_on_8000_image(page, server, wafer, shoot) -> None:
    tiles: list[str] = []
    page.on("request", lambda request: tiles.append(request.url) if "/tiles/" in request.url else None)
    page.goto(f"/projects/wafers/images/{wafer}")
    page.wait_for_function("window.defectlabViewer && window.defectlabViewer.scale > 0")
    expect(page.locator("h1")).to_contain_text("8000×8000")
    page.wait_for_function("window.defectlabViewer.overviewLoaded()", timeout=60_000)
    shoot(page, "1-fit")

    canvas = page.locator("#canvas").bounding_box()
    for _ in range(8):
        screen = page.evaluate("() => window.defectlabViewer.toScreen(4002, 4002)")
        page.mouse.move(canvas["x"] + screen["x"], canvas["y"] + screen["y"])
        page.mouse.wheel(0, -300)
        page.wait_for_timeout(50)
    scale = page.evaluate("() => window.defectlabViewer.scale")
    assert scale >= 16, f"zoomed only to {scale:.2f} screen pixels per image pixel"
    page.wait_for_function("""() => [...window.defectlabViewer.tiles.entries()]
        .some(([key, tile]) => key.startsWith('0/') && tile.complete && tile.naturalWidth > 0)""")

    def at(x: float, y: float) -> tuple[float, float]:
        screen = page.evaluate("([x, y]) => window.defectlabViewer.toScreen(x, y)", [x, y])
        return canvas["x"] + screen["x"], canvas["y"] + screen["y"]

    page.keyboard.press("b")
    page.mouse.move(*at(DEFECT[0], DEFECT[1]))
    page.mouse.down()
    page.mouse.move(*at(DEFECT[2], DEFECT[3]), steps=5)
    page.mouse.up()
    expect(page.locator("#regions")).to_contain_text("pit · box 4000, 4000, 4004, 4004")
    shoot(page, "2-box")
    page.click("#save")
    expect(page.locator("#version")).to_have_text(re.compile(r"^Version \d+$"))

    saved = read_annotations(server.workspace, "wafers", wafer)
    assert saved["regions"][0]["box"] == [4000.0, 4000.0, 4004.0, 4004.0]
    full_resolution = [url for url in tiles if "/tiles/0/" in url]
    # Only the tiles on screen are fetched: the full-resolution level has 32x32 = 1024 tiles.
    assert 0 < len(full_resolution) <= 40, full_resolution
