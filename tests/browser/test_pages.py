"""What a person does in the browser: sign in, create a project, look through the images, label, hit a conflict,
edit the book.

Each test opens the pages of one server (started once for the module) in
real headless Chromium and checks the result through the REST API.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import update

from defectlab.data.annotations import read_annotations, save_annotations
from defectlab.data.importer import import_path
from defectlab.data.labels import list_images
from defectlab.workspace.schema import Image as ImageRow

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api").expect


@pytest.fixture(scope="module")
def caps(server, tmp_path_factory) -> dict[str, int]:
    """Create detection project ``caps`` with ten unlabeled 96x96 images, stations A and B; return ids by path."""
    folder = tmp_path_factory.mktemp("caps") / "images"
    folder.mkdir()
    generator = np.random.default_rng(5)
    for number in range(10):
        pixels = (100 + generator.normal(0, 3, (96, 96))).clip(0, 255).astype(np.uint8)
        pixels[40:44, 50:60] = 30
        Image.fromarray(pixels).save(folder / f"cap_{number:02d}.png")
    workspace = server.workspace
    workspace.create_project("caps", "detection", ["scratch", "dent"])
    import_path(workspace, "caps", folder, format="folders")
    ids = {row["path"]: row["id"] for row in list_images(workspace, "caps")}
    with workspace.session() as session:
        for path, image_id in ids.items():
            station = "A" if int(path[-6:-4]) % 2 == 0 else "B"
            session.execute(update(ImageRow).where(ImageRow.id == image_id).values(meta={"station": station}))
    return ids


def canvas_point(page, x: float, y: float) -> tuple[float, float]:
    """Return the page coordinates of image pixel corner (x, y) in the labeling page's viewer."""
    box = page.locator("#canvas").bounding_box()
    screen = page.evaluate("([x, y]) => window.defectlabViewer.toScreen(x, y)", [x, y])
    return box["x"] + screen["x"], box["y"] + screen["y"]


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=3)
    page.mouse.move(*end, steps=3)
    page.mouse.up()


def open_label_page(page, image_id: int) -> None:
    page.goto(f"/projects/caps/images/{image_id}")
    expect(page.locator("#label-state")).to_be_visible()
    page.wait_for_function("window.defectlabViewer && window.defectlabViewer.scale > 0")


def test_sign_in_out_and_role_refusal(fresh_page, signer, server, shoot) -> None:
    from defectlab.accounts import create_user

    page = fresh_page()
    page.goto("/")
    page.wait_for_url(re.compile(r"/signin\?next=%2F$"))
    shoot(page, "1-sign-in")
    page.fill("input[name=name]", "ana")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.locator("#message")).to_contain_text("wrong name or password")
    signer(page)
    expect(page.locator("#who")).to_have_text("Signed in as ana (owner) Sign out")
    shoot(page, "2-signed-in")
    page.click("#who button")
    page.wait_for_url(re.compile(r"/signin$"))
    page.goto("/")
    page.wait_for_url(re.compile(r"/signin\?next="))

    create_user(server.workspace, "val", "viewer", created_by="test", password="viewer password")
    viewer = fresh_page()
    signer(viewer, "val", "viewer password")
    viewer.fill("input[name=name]", "lines")
    viewer.click("text=Create project")
    expect(viewer.locator("#message")).to_contain_text("needs the role owner or higher, and 'val' is a viewer")
    shoot(viewer, "3-viewer-refused")
    assert server.workspace.list_projects() == []


def test_create_project_in_page(page, server, shoot) -> None:
    page.goto("/")
    expect(page.get_by_text("No project yet")).to_be_visible()
    shoot(page, "1-empty")
    page.fill("input[name=name]", "Bottle <caps>")
    page.select_option("select[name=task]", "detection")
    page.fill("input[name=classes]", "scratch, dent")
    page.click("text=Create project")
    expect(page.get_by_text("project name 'Bottle <caps>' is not valid")).to_be_visible()

    page.fill("input[name=name]", "bottle caps")
    page.click("text=Create project")
    page.wait_for_url(re.compile(r"/projects/bottle%20caps$"))
    expect(page.get_by_text("This project has no images yet")).to_be_visible()
    shoot(page, "2-created")
    described = server.workspace.list_projects()
    assert [project.name for project in described] == ["bottle caps"]

    page.goto("/")
    expect(page.locator("#projects")).to_contain_text("bottle caps")
    expect(page.locator("#projects")).to_contain_text("scratch, dent")


def test_upload_reports_bad_file(page, server, shoot, tmp_path) -> None:
    server.workspace.create_project("lids", "detection", ["scratch"])
    for number in range(2):
        Image.fromarray(np.full((40, 40), 90 + 40 * number, dtype=np.uint8)).save(tmp_path / f"lid_{number}.png")
    (tmp_path / "lid_broken.png").write_bytes((tmp_path / "lid_0.png").read_bytes()[:30])
    page.goto("/projects/lids")
    expect(page.locator("#drop-zone")).to_be_visible()
    page.set_input_files("#upload-files", [str(tmp_path / name) for name in ("lid_0.png", "lid_1.png", "lid_broken.png")])
    report = page.locator("#import-report")
    expect(report).to_contain_text("Imported 3 files: 2 images added", timeout=60_000)
    expect(report.locator("table.problems")).to_contain_text("lid_broken.png")
    expect(page.locator(".thumb")).to_have_count(2)
    shoot(page, "1-report")


def test_grid_filters_and_bulk_split(page, caps, shoot) -> None:
    page.goto("/projects/caps")
    expect(page.locator(".thumb")).to_have_count(10)
    page.wait_for_function("[...document.querySelectorAll('.thumb img')].every((i) => i.complete && i.naturalWidth > 0)")
    expect(page.locator("#page-info").first).to_have_text("Page 1 of 1 · 10 images")
    shoot(page, "1-grid")

    page.select_option("select[name=key]", "station")
    page.select_option("select[name=value]", "B")
    expect(page.locator(".thumb")).to_have_count(5)
    assert "key=station" in page.url
    assert "value=B" in page.url
    page.click("text=Select page")
    expect(page.locator("#selection")).to_have_text("5 selected")
    page.select_option("select[name=bulk-split]", "test")
    page.click("text=Set split")
    expect(page.locator("#message")).to_contain_text("5 of 5 images changed")
    shoot(page, "2-split")

    page.select_option("select[name=key]", "")
    page.select_option("select[name=split]", "test")
    expect(page.locator(".thumb")).to_have_count(5)
    expect(page.locator(".thumb .chip.split").first).to_have_text("test")
    page.select_option("select[name=split]", "")
    page.select_option("select[name=sort]", "-path")
    expect(page.locator(".thumb .path").first).to_have_text("cap_09.png")


def test_label_box_and_no_defect(page, server, caps, shoot) -> None:
    image_id = caps["cap_00.png"]
    open_label_page(page, image_id)
    expect(page.locator("#label-state")).to_have_text("Not labeled")
    page.keyboard.press("b")
    page.click("button[data-class=dent]")
    drag(page, canvas_point(page, 50, 40), canvas_point(page, 60, 44))
    expect(page.locator("#regions")).to_contain_text("dent · box 50, 40, 60, 44")
    page.keyboard.press("Control+z")
    expect(page.locator("#regions")).to_have_count(0)
    page.keyboard.press("Control+Shift+z")
    expect(page.locator("#label-state")).to_have_text("Defective")
    shoot(page, "1-drawn")
    page.keyboard.press("Control+s")
    expect(page.locator("#version")).to_have_text("Version 2")
    saved = read_annotations(server.workspace, "caps", image_id)
    assert saved["regions"] == [{"class": "dent", "labeler": "ana", "box": [50.0, 40.0, 60.0, 44.0]}]
    expect(page.locator("#book-entry")).to_contain_text("Defect book: dent")
    shoot(page, "2-saved")

    page.click("#next")
    page.wait_for_url(re.compile(rf"/images/{caps['cap_01.png']}$"))
    expect(page.locator("#label-state")).to_have_text("Not labeled")
    before = read_annotations(server.workspace, "caps", caps["cap_01.png"])["version"]
    page.keyboard.press("n")
    expect(page.locator("#label-state")).to_have_text("No defect")
    page.click("#save")
    expect(page.locator("#version")).to_have_text(f"Version {before + 1}")
    assert read_annotations(server.workspace, "caps", caps["cap_01.png"])["state"] == "no_defect"


def test_stale_save_shows_conflict(page, server, caps, shoot) -> None:
    image_id = caps["cap_02.png"]
    open_label_page(page, image_id)
    version = read_annotations(server.workspace, "caps", image_id)["version"]
    save_annotations(server.workspace, "caps", image_id, labeler="ben", version=version,
                     regions=[{"class": "scratch", "box": [10, 10, 20, 20]}])

    page.keyboard.press("b")
    drag(page, canvas_point(page, 50, 40), canvas_point(page, 60, 44))
    page.click("#save")
    conflict = page.locator("#conflict")
    expect(conflict).to_be_visible()
    expect(conflict).to_contain_text("someone else saved this image")
    expect(conflict).to_contain_text(f"is at version {version + 1}, not {version}")
    shoot(page, "1-conflict")
    kept = read_annotations(server.workspace, "caps", image_id)
    assert kept["regions"] == [{"class": "scratch", "labeler": "ben", "box": [10.0, 10.0, 20.0, 20.0]}]

    page.click("#load-saved")
    expect(conflict).to_be_hidden()
    expect(page.locator("#regions")).to_contain_text("scratch · box 10, 10, 20, 20")
    shoot(page, "2-loaded")


def test_edit_defect_book_and_print(page, server, caps, shoot) -> None:
    page.goto("/projects/caps/book#scratch")
    form = page.locator("#entry-form")
    expect(form).to_contain_text("not described yet")
    page.fill("textarea[name=definition]", "A bright line <b>scratched</b> into the cap's paint.")
    page.fill("input[name=min_length]", "4")
    page.click("text=Save entry")
    expect(form).to_contain_text("version 1 by ana")
    page.fill("#add-example input[name=image_id]", str(caps["cap_03.png"]))
    page.select_option("#add-example select[name=role]", "borderline")
    page.fill("#add-example input[name=note]", "3 px long: just below the rule")
    page.click("text=Link image")
    expect(page.locator("[data-role=borderline] figure")).to_have_count(1)
    expect(page.locator("#history tbody tr")).to_have_count(2)
    typed = "A bright line <b>scratched</b> into the cap's paint."
    expect(page.locator("textarea[name=definition]")).to_have_value(typed)
    expect(page.locator(".print-entry .definition").nth(1)).to_have_text(typed)
    shoot(page, "1-entry")

    page.locator("#history button", has_text="view").last.click()
    expect(page.locator("#old-version")).to_contain_text("Version 1 as it was")
    expect(page.locator("#old-version")).to_contain_text("defective when the longest side is at least 4 px")

    page.emulate_media(media="print")
    expect(page.locator("#print-view")).to_be_visible()
    expect(page.locator(".print-entry")).to_have_count(3)
    expect(page.locator(".screen")).to_be_hidden()
    shoot(page, "2-print")
    breaks = page.eval_on_selector(".print-entry", "e => getComputedStyle(e).breakAfter")
    assert breaks == "page"


def test_stale_book_edit_shows_conflict(page, server, caps) -> None:
    from defectlab.book import update_entry

    page.goto("/projects/caps/book#dent")
    expect(page.locator("#entry-form")).to_contain_text("not described yet")
    update_entry(server.workspace, "caps", "dent", author="ben", definition="A dent: pressed in.")
    page.fill("textarea[name=definition]", "A hollow.")
    page.click("text=Save entry")
    expect(page.locator("#entry-conflict")).to_contain_text("someone else changed this entry")
    assert page.input_value("textarea[name=definition]") == "A hollow."


def test_polygon_and_brush_mask(page, server, shoot, tmp_path) -> None:
    folder = tmp_path / "plates" / "images"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((96, 96), 128, dtype=np.uint8)).save(folder / "plate.png")
    server.workspace.create_project("plates", "segmentation", ["stain"])
    import_path(server.workspace, "plates", folder, format="folders")
    image_id = list_images(server.workspace, "plates")[0]["id"]
    page.goto(f"/projects/plates/images/{image_id}")
    page.wait_for_function("window.defectlabViewer && window.defectlabViewer.scale > 0")
    expect(page.locator("button.tool")).to_have_text(["Pan (V)", "Polygon (P)", "Brush (R)", "Eraser (E)"])

    def at(x: float, y: float) -> tuple[float, float]:
        box = page.locator("#canvas").bounding_box()
        screen = page.evaluate("([x, y]) => window.defectlabViewer.toScreen(x, y)", [x, y])
        return box["x"] + screen["x"], box["y"] + screen["y"]

    page.keyboard.press("p")
    for corner in ((10, 10), (30, 10), (20, 25)):
        page.mouse.click(*at(*corner))
    page.keyboard.press("Enter")
    expect(page.locator("#regions")).to_contain_text("stain · polygon of 3 points")

    page.keyboard.press("r")
    page.locator("#brush-size").fill("6")
    drag(page, at(50, 70), at(70, 70))
    page.keyboard.press("e")
    page.mouse.click(*at(70, 70))
    expect(page.locator("#regions li")).to_have_count(2)
    shoot(page, "1-drawn")
    page.click("#save")
    expect(page.locator("#version")).to_have_text("Version 2")

    polygon, mask = read_annotations(server.workspace, "plates", image_id)["regions"]
    assert polygon["polygon"] == [10.0, 10.0, 30.0, 10.0, 20.0, 25.0]
    assert mask["class"] == "stain"
    crop = mask["mask"]
    assert 46 <= crop["x"] <= 48
    assert 66 <= crop["y"] <= 68
    # The stroke ran from x 47 to 73 and the eraser took away the part right of about x 67.
    assert 18 <= crop["width"] <= 22
    assert 5 <= crop["height"] <= 7

    page.reload()
    expect(page.locator("#regions")).to_contain_text("stain · mask")
    expect(page.locator("#label-state")).to_have_text("Defective")


def test_train_and_watch_progress(page, server, shoot, tmp_path) -> None:
    folder = tmp_path / "tiles" / "good"
    folder.mkdir(parents=True)
    generator = np.random.default_rng(1)
    for number in range(10):
        Image.fromarray(generator.integers(100, 140, (32, 32), dtype=np.uint8)).save(folder / f"{number}.png")
    server.workspace.create_project("tiles", "anomaly", ["scratch"])
    import_path(server.workspace, "tiles", folder.parent)

    page.goto("/projects/tiles/train")
    expect(page.get_by_text("No model yet.")).to_be_visible()
    page.click("#advanced summary")
    page.fill("#advanced-settings input[name=epochs]", "500")
    page.click("#train")
    assert not page.eval_on_selector("#advanced-settings input[name=epochs]", "input => input.validity.valid")
    expect(page.locator(".job")).to_have_count(0)
    page.fill("#advanced-settings input[name=epochs]", "")
    page.click("#train")
    expect(page.locator(".job").first).to_be_visible()
    shoot(page, "1-running")
    expect(page.locator(".job.succeeded")).to_be_visible(timeout=180_000)
    expect(page.locator("#models tbody tr")).to_have_count(1)
    expect(page.locator(".job.succeeded")).to_contain_text("trained in")
    shoot(page, "2-done")

    page.reload()
    expect(page.locator(".job.succeeded")).to_have_count(1)

    page.click("text=Open its report")
    expect(page.get_by_text("Not evaluated yet.")).to_be_visible()
    page.click("#evaluate")
    expect(page.locator("#report")).to_be_visible(timeout=180_000)
    expect(page.locator("#report h2").first).to_contain_text("Evaluation on the test split · 2 images")
    cells = page.locator("#confusion button")
    counts = [int(text) for text in cells.all_inner_texts()]
    assert sum(counts) == 2
    busiest = counts.index(max(counts))
    cells.nth(busiest).click()
    expect(page.locator("#chosen-images .thumb")).to_have_count(max(counts))
    shoot(page, "3-report")
    page.locator("#chosen-images .thumb a").first.click()
    page.wait_for_url(re.compile(r"/projects/tiles/images/\d+$"))
    expect(page.locator("#label-state")).to_have_text("No defect")

    image_id = int(page.url.rsplit("/", 1)[1])
    page.click("button[data-class=scratch]")
    page.keyboard.press("Control+s")
    expect(page.locator("#version")).to_have_text("Version 2")
    shoot(page, "4-relabeled")
    relabeled = read_annotations(server.workspace, "tiles", image_id)
    assert relabeled["class"] == "scratch"
    assert relabeled["regions"] == []


def test_image_class_by_keyboard(page, server, tmp_path) -> None:
    folder = tmp_path / "rings"
    for name in ("ok", "crack"):
        (folder / name).mkdir(parents=True)
        Image.fromarray(np.full((24, 24), 100, dtype=np.uint8)).save(folder / name / "0.png")
    server.workspace.create_project("rings", "classification", ["crack", "burr"])
    import_path(server.workspace, "rings", folder)
    image_id = {row["path"]: row["id"] for row in list_images(server.workspace, "rings")}["ok/0.png"]

    page.goto(f"/projects/rings/images/{image_id}")
    expect(page.locator("#label-state")).to_have_text("No defect")
    expect(page.locator("button.tool")).to_have_text(["Pan (V)"])
    page.keyboard.press("2")
    expect(page.locator("#label-state")).to_have_text("Defective")
    expect(page.locator("button[data-class=burr]")).to_have_class(re.compile("chosen"))
    expect(page.locator("#book-entry h2")).to_have_text("Defect book: burr")
    page.keyboard.press("Control+s")
    expect(page.locator("#version")).to_have_text("Version 2")
    saved = read_annotations(server.workspace, "rings", image_id)
    assert saved["class"] == "burr"
    assert saved["state"] == "defective"
