"""Reviewing proposed labels in the browser: make them, then accept, correct, reject and answer a blind check by key.

One small classification project gets its proposals from the features job on
a few tiny generated images, with no training. The results are checked
through the REST API, as another client would see them.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import update

from defectlab.data.annotations import save_annotations
from defectlab.data.importer import import_path
from defectlab.data.labels import list_images
from defectlab.workspace.schema import Proposal

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api").expect

LABELED = {"ok": 3, "scratch": 3, "dent": 3}
UNLABELED = 4
JOB_TIMEOUT_MS = 180_000  # the worker imports PyTorch and extracts features on the CPU


def draw(kind: str, generator: np.random.Generator) -> np.ndarray:
    """Return a 32x32 grayscale part: plain, with a dark horizontal scratch, or with a dark round dent."""
    pixels = 140 + generator.normal(0, 4, (32, 32))
    if kind == "scratch":
        pixels[15:17, 4:28] = 40
    elif kind == "dent":
        rows, columns = np.ogrid[:32, :32]
        pixels[(rows - 16) ** 2 + (columns - 16) ** 2 < 25] = 50
    return pixels.clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def parts(server, tmp_path_factory) -> list[int]:
    """Create classification project ``parts`` with three labeled images a class and four unlabeled ones.

    Returns the ids of the unlabeled images.
    """
    folder = tmp_path_factory.mktemp("parts") / "images"
    folder.mkdir()
    generator = np.random.default_rng(11)
    kinds = [kind for kind, count in LABELED.items() for _ in range(count)] + ["scratch", "ok", "dent", "scratch"]
    for number, kind in enumerate(kinds):
        Image.fromarray(draw(kind, generator)).save(folder / f"part_{number:02d}.png")
    workspace = server.workspace
    workspace.create_project("parts", "classification", ["scratch", "dent"])
    import_path(workspace, "parts", folder, format="folders")
    rows = sorted(list_images(workspace, "parts"), key=lambda row: row["path"])
    for row, kind in zip(rows, kinds[:len(kinds) - UNLABELED]):
        save_annotations(workspace, "parts", row["id"], labeler="lead", version=row["version"], class_name=kind)
    return [row["id"] for row in rows[len(kinds) - UNLABELED:]]


def image_label(page, image_id: int) -> str | None:
    response = page.request.get(f"/api/projects/parts/images/{image_id}")
    assert response.ok, response.text()
    return response.json()["label"]


def open_proposals(page) -> list[dict]:
    response = page.request.get("/api/projects/parts/proposals?status=open")
    assert response.ok, response.text()
    return response.json()


def key_for(page, class_name: str) -> str:
    """Return the key that chooses a class on the review page: N for ok, else the defect class's position."""
    if class_name == "ok":
        return "n"
    defects = [name for name in page.request.get("/api/projects/parts").json()["classes"] if name != "ok"]
    return str(defects.index(class_name) + 1)


def shown_proposal(page, proposal_id: int) -> None:
    expect(page.locator("#review")).to_have_attribute("data-proposal", str(proposal_id))


def test_review_by_keyboard(page, server, parts, shoot, csrf) -> None:
    page.goto("/projects/parts")
    page.click("#review-link")
    expect(page.locator("#none-left")).to_be_visible()

    page.click("#make-proposals")
    expect(page.locator("#proposed")).to_be_visible(timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#message")).to_contain_text(f"Proposed labels for {UNLABELED} images from features")
    proposals = open_proposals(page)
    assert sorted(row["image_id"] for row in proposals) == sorted(parts)
    # Blind checks are drawn at random, so the test makes the most confident proposal, served last, the blind one.
    with server.workspace.session() as session:
        session.execute(update(Proposal).where(Proposal.id.in_([row["id"] for row in proposals]))
                        .values(blind=False))
        session.execute(update(Proposal).where(Proposal.id == proposals[-1]["id"]).values(blind=True))
    first, second, third, blind = proposals
    page.reload()
    shown_proposal(page, first["id"])
    expect(page.locator("#proposed-class")).to_have_text(first["label"] if first["label"] != "ok" else "no defect")
    expect(page.locator("#confidence")).to_contain_text("% confident")
    expect(page.locator("#remaining")).to_have_text(str(UNLABELED))
    page.wait_for_function("window.defectlabViewer && window.defectlabViewer.overviewLoaded()")
    shoot(page, "1-proposal")

    page.keyboard.press("a")
    shown_proposal(page, second["id"])
    assert image_label(page, first["image_id"]) == first["label"]
    expect(page.locator("#reviewed")).to_have_text("1")

    other = next(name for name in ("ok", "scratch", "dent") if name != second["label"])
    page.keyboard.press(key_for(page, other))
    shown_proposal(page, third["id"])
    assert image_label(page, second["image_id"]) == other
    expect(page.locator("#message")).to_contain_text("Corrected")

    page.keyboard.press("r")
    shown_proposal(page, blind["id"])
    assert image_label(page, third["image_id"]) is None

    expect(page.locator("#blind-check")).to_have_text(f"Blind check: label this image yourself · {blind['path']}")
    expect(page.locator("#proposed-class")).to_have_count(0)
    expect(page.locator("#confidence")).to_have_count(0)
    expect(page.locator("#accept")).to_be_disabled()
    shoot(page, "2-blind-check")
    page.keyboard.press("a")
    expect(page.locator("#message")).to_contain_text("blind check, so it cannot be accepted")
    shown_proposal(page, blind["id"])

    page.keyboard.press(key_for(page, "dent"))
    expect(page.locator("#none-left")).to_be_visible()
    expect(page.locator("#message")).to_contain_text(f"Blind check of {blind['path']}: your label dent")
    expect(page.locator("#reviewed")).to_have_text("4")
    expect(page.locator("#remaining")).to_have_text("0")
    expect(page.locator("#blind-agreement")).to_contain_text("Blind checks: 1")
    expect(page.locator("#by-class")).to_be_visible()
    shoot(page, "3-done")
    assert image_label(page, blind["image_id"]) == "dent"
    statuses = {row["id"]: row["status"] for row in page.request.get("/api/projects/parts/proposals?status=all").json()}
    assert statuses[first["id"]] == "accepted"
    assert statuses[second["id"]] == "corrected"
    assert statuses[third["id"]] == "rejected"

    # A job started elsewhere is followed after a reload. The worker takes seconds to import PyTorch, so the
    # page opens while the job still runs.
    started = page.request.post("/api/projects/parts/proposals", data={"source": "features"}, headers=csrf(page))
    assert started.status == 202, started.text()
    page.reload()
    expect(page.locator("#make-proposals")).to_have_text("Making proposals…")
    expect(page.locator("#make-proposals")).to_be_disabled()
    expect(page.locator("#proposed, #blind-check")).to_be_visible(timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#make-proposals")).to_be_enabled()
    assert [row["image_id"] for row in open_proposals(page)] == [third["image_id"]]


@pytest.fixture(scope="module")
def caps(server, tmp_path_factory) -> list[int]:
    """Create detection project ``caps`` with eleven unlabeled 32x32 images; return their ids in path order."""
    folder = tmp_path_factory.mktemp("caps") / "images"
    folder.mkdir()
    generator = np.random.default_rng(12)
    for number in range(11):
        Image.fromarray(draw("scratch", generator)).save(folder / f"cap_{number:02d}.png")
    workspace = server.workspace
    workspace.create_project("caps", "detection", ["scratch", "dent"])
    import_path(workspace, "caps", folder, format="folders")
    return [row["id"] for row in sorted(list_images(workspace, "caps"), key=lambda row: row["path"])]


def insert_reviewed(workspace, image_ids: list[int]) -> None:
    """Store five accepted proposals and five blind checks that contradicted theirs, as a hasty reviewer leaves them."""
    from datetime import datetime, timedelta, timezone

    started = datetime.now(timezone.utc) - timedelta(minutes=10)
    with workspace.session() as session:
        project_id = workspace.get_project(session, "caps").id
        for number, image_id in enumerate(image_ids):
            blind = number % 2 == 1
            session.add(Proposal(project_id=project_id, image_id=image_id, source="model 1", label="scratch",
                                 regions=None, confidence=0.9, blind=blind, reviewer="bob",
                                 status="corrected" if blind else "accepted", answer="ok" if blind else "scratch",
                                 reviewed_at=started + timedelta(seconds=3 * number)))


def test_region_proposal_and_warning(page, server, caps, shoot) -> None:
    insert_reviewed(server.workspace, caps[:10])
    box = [10.0, 12.0, 28.0, 20.0]
    with server.workspace.session() as session:
        project_id = server.workspace.get_project(session, "caps").id
        session.add(Proposal(project_id=project_id, image_id=caps[10], source="model 1", label="scratch",
                             regions=[{"class": "scratch", "box": box, "score": 0.6}], confidence=0.6))

    page.goto("/projects/caps/review")
    expect(page.locator("#proposed-class")).to_have_text("scratch")
    expect(page.locator("#proposal")).to_contain_text("1 proposed region drawn on the image")
    expect(page.locator("#report .warning")).to_contain_text("accepted without a close look")
    page.wait_for_function("window.defectlabViewer && window.defectlabViewer.overviewLoaded()")
    # The box's top edge is dashed in the first defect class's colour, #e6194b.
    red_pixels = page.evaluate("""([x0, y0, x1]) => {
        const viewer = window.defectlabViewer;
        viewer.draw();
        const ctx = viewer.canvas.getContext("2d");
        const ratio = window.devicePixelRatio || 1;
        let found = 0;
        for (let x = x0; x <= x1; x += 0.5) {
          const point = viewer.toScreen(x, y0);
          // The 2-pixel line straddles the edge, so the three rows around it are read.
          const data = ctx.getImageData(Math.round(point.x * ratio), Math.round(point.y * ratio) - 1, 1, 3).data;
          const rows = [0, 4, 8].map((i) => [data[i], data[i + 1], data[i + 2]]);
          if (rows.some(([r, g, b]) => r > 180 && g < 80 && b < 120)) found += 1;
        }
        return found;
    }""", [box[0], box[1], box[2]])
    assert red_pixels > 10
    shoot(page, "1-region-proposal")

    page.keyboard.press("Enter")
    expect(page.locator("#none-left")).to_be_visible()
    saved = page.request.get(f"/api/projects/caps/images/{caps[10]}/annotations").json()
    assert [region["class"] for region in saved["regions"]] == ["scratch"]
    assert saved["regions"][0]["box"] == box
