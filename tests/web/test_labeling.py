"""The labeling page's routes: an image's whole label with its version, the edit conflict, masks and tiles."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectlab.data.importer import import_path
from defectlab.data.labels import list_images
from defectlab.images.display import TILE_SIZE


@pytest.fixture
def boards(workspace, tmp_path: Path) -> dict[str, int]:
    """Create detection project ``boards`` (classes ok, scratch) with two unlabeled 600x300 images."""
    folder = tmp_path / "boards" / "images"
    folder.mkdir(parents=True)
    for number in range(2):
        pixels = np.full((300, 600), 60 + number, dtype=np.uint8)
        pixels[:, 300:] = 200
        Image.fromarray(pixels).save(folder / f"{number}.png")
    workspace.create_project("boards", "detection", ["scratch"])
    workspace.create_project("other", "detection", ["scratch"])
    import_path(workspace, "boards", folder, format="folders")
    return {row["path"]: row["id"] for row in list_images(workspace, "boards")}


def url(image_id: int, suffix: str = "annotations") -> str:
    return f"/api/projects/boards/images/{image_id}/{suffix}"


def mask_png(mask: np.ndarray) -> str:
    stream = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(stream, format="PNG")
    return base64.b64encode(stream.getvalue()).decode("ascii")


def test_new_image_is_not_labeled(api, boards) -> None:
    label = api.get(url(boards["0.png"])).json()
    assert label["state"] == "not_labeled"
    assert label["label"] is None
    assert label["regions"] == []
    assert (label["width"], label["height"]) == (600, 300)


def test_box_saved_exactly_and_version_advances(api, boards) -> None:
    first = api.get(url(boards["0.png"])).json()
    saved = api.put(url(boards["0.png"]), json={"labeler": "ana", "version": first["version"],
                                                "regions": [{"class": "scratch", "box": [10, 20, 14, 24]}]})
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["version"] == first["version"] + 1
    assert body["state"] == "defective"
    assert body["label"] == "scratch"
    assert body["regions"] == [{"class": "scratch", "labeler": "ana", "box": [10.0, 20.0, 14.0, 24.0]}]
    assert api.get(url(boards["0.png"])).json() == body


def test_stale_save_is_409_and_keeps_first(api, boards, person) -> None:
    version = api.get(url(boards["0.png"])).json()["version"]
    box_x = {"class": "scratch", "box": [1, 1, 5, 5]}
    box_y = {"class": "scratch", "box": [50, 50, 60, 60]}
    assert api.put(url(boards["0.png"]), json={"labeler": "ana", "version": version, "regions": [box_x]}).status_code == 200

    stale = api.put(url(boards["0.png"]), json={"version": version, "regions": [box_y]}, headers=person("ben"))
    assert stale.status_code == 409
    assert f"is at version {version + 1}, not {version}" in stale.json()["error"]
    kept = api.get(url(boards["0.png"])).json()
    assert [region["box"] for region in kept["regions"]] == [[1.0, 1.0, 5.0, 5.0]]
    assert kept["regions"][0]["labeler"] == "ana"


def test_no_defect_differs_from_not_labeled(api, boards) -> None:
    version = api.get(url(boards["1.png"])).json()["version"]
    marked = api.put(url(boards["1.png"]), json={"labeler": "ana", "version": version, "class": "ok"}).json()
    assert marked["state"] == "no_defect"
    assert marked["label"] == "ok"
    assert api.get("/api/projects/boards/browse?label=ok").json()["total"] == 1

    cleared = api.put(url(boards["1.png"]), json={"labeler": "ana", "version": marked["version"]}).json()
    assert cleared["state"] == "not_labeled"
    assert cleared["label"] is None
    assert api.get("/api/projects/boards/browse?labeled=false").json()["total"] == 2


def test_polygon_and_mask_round_trip(api, boards) -> None:
    mask = np.zeros((6, 8), dtype=bool)
    mask[1:5, 2:6] = True
    body = {"labeler": "ana", "version": 1, "regions": [
        {"class": "scratch", "polygon": [100, 100, 140, 100, 120, 130]},
        {"class": "scratch", "mask": {"x": 300, "y": 40, "png": mask_png(mask)}},
    ]}
    saved = api.put(url(boards["0.png"]), json=body)
    assert saved.status_code == 200, saved.text
    polygon, crop = saved.json()["regions"]
    assert polygon["polygon"] == [100.0, 100.0, 140.0, 100.0, 120.0, 130.0]
    assert {key: crop["mask"][key] for key in ("x", "y", "width", "height")} == {"x": 302, "y": 41, "width": 4,
                                                                                 "height": 4}
    stored = np.asarray(Image.open(io.BytesIO(base64.b64decode(crop["mask"]["png"])))) > 0
    assert stored.sum() == 16


def test_mask_crop_from_canvas_uses_alpha(api, boards) -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[1:3, 1:3] = (230, 25, 75, 255)
    stream = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(stream, format="PNG")
    data_url = "data:image/png;base64," + base64.b64encode(stream.getvalue()).decode("ascii")
    saved = api.put(url(boards["0.png"]), json={"labeler": "ana", "version": 1, "regions": [
        {"class": "scratch", "mask": {"x": 0, "y": 0, "png": data_url}}]})
    assert saved.status_code == 200, saved.text
    assert saved.json()["regions"][0]["mask"]["width"] == 2


@pytest.mark.parametrize(("body", "words"), [
    ({"class": "ok", "regions": [{"class": "scratch", "box": [1, 1, 5, 5]}]}, "cannot have regions"),
    ({"regions": [{"class": "ok", "box": [1, 1, 5, 5]}]}, "region 1 has class 'ok'"),
    ({"regions": [{"class": "crack", "box": [1, 1, 5, 5]}]}, "class 'crack' is not in project"),
    ({"regions": [{"class": "scratch", "box": [5, 5, 5, 9]}]}, "region 1: box [5.0, 5.0, 5.0, 9.0] is not valid"),
    ({"regions": [{"class": "scratch", "box": [700, 5, 800, 9]}]}, "region 1 is not valid"),
    ({"regions": [{"class": "scratch", "polygon": [1, 1, 5, 5]}]}, "at least 3 points"),
    ({"regions": [{"class": "scratch", "box": [1, 1, 5, 5], "polygon": [1, 1, 5, 5, 1, 5]}]}, "exactly one of"),
    ({"regions": [{"class": "scratch", "mask": {"x": 0, "y": 0, "png": "not base64!"}}]}, "not a base64 PNG"),
    ({"class": "scratch", "version": "new"}, "body.version"),
])
def test_invalid_label_is_400_and_saves_nothing(api, boards, body, words) -> None:
    answer = api.put(url(boards["0.png"]), json={"labeler": "ana", "version": 1, **body})
    assert answer.status_code == 400
    assert words in answer.json()["error"]
    assert api.get(url(boards["0.png"])).json()["version"] == 1


def test_image_of_other_project_is_404(api, boards) -> None:
    answer = api.get(f"/api/projects/other/images/{boards['0.png']}/annotations")
    assert answer.status_code == 404
    assert answer.json()["error"].startswith(f"image {boards['0.png']} is not in project 'other'")


def test_tiles_cover_image_at_every_level(api, boards) -> None:
    info = api.get(url(boards["0.png"], "tiles")).json()
    assert info == {"width": 600, "height": 300, "tile_size": TILE_SIZE, "levels": 3}
    corner = api.get(url(boards["0.png"], "tiles/0/2/1.png"))
    assert corner.status_code == 200
    assert Image.open(io.BytesIO(corner.content)).size == (600 - 2 * TILE_SIZE, 300 - TILE_SIZE)
    top = Image.open(io.BytesIO(api.get(url(boards["0.png"], "tiles/2/0/0.png")).content))
    assert top.size == (150, 75)
    # The halves span 140 grey levels, enough contrast to be shown as stored.
    assert np.asarray(top)[10, 10] == 60
    assert np.asarray(top)[10, 140] == 200


@pytest.mark.parametrize("suffix", ["tiles/3/0/0.png", "tiles/0/3/0.png", "tiles/0/0/2.png", "tiles/0/-1/0.png"])
def test_tile_outside_pyramid_is_404(api, boards, suffix) -> None:
    answer = api.get(url(boards["0.png"], suffix))
    assert answer.status_code == 404
    assert "does not exist" in answer.json()["error"]
