"""The data browser's routes: pages with filters and sorting, metadata keys, bulk changes, and thumbnails."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import update

from defectlab.data.browse import ImageFilter, browse_images
from defectlab.data.snapshot import take_snapshot
from defectlab.errors import InvalidInputError
from defectlab.images.display import contrast_window, to_view
from defectlab.web.evaluations import select_evaluated
from defectlab.workspace.schema import Image as ImageRow


def browse(api, query: str = "") -> dict:
    answer = api.get(f"/api/projects/parts/browse?{query}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def paths(page: dict) -> list[str]:
    return [image["path"] for image in page["images"]]


def test_first_page_sorted_by_path(api, parts) -> None:
    page = browse(api, "page_size=5")
    assert page["total"] == 12
    assert page["pages"] == 3
    assert paths(page) == ["dent/0.png", "dent/1.png", "dent/2.png", "dent/3.png", "ok/0.png"]
    assert page["images"][0]["label"] == "dent"
    assert page["images"][0]["width"] == 16
    last = browse(api, "page_size=5&page=3&sort=-path")
    assert paths(last) == ["dent/1.png", "dent/0.png"]


@pytest.mark.parametrize(("query", "expected"), [
    ("label=scratch", 4),
    ("label=ok", 4),
    ("label=good", 4),
    ("labeled=true", 12),
    ("labeled=false", 0),
    ("split=none", 12),
    ("split=train", 0),
    ("excluded=false", 12),
])
def test_filters_count_images(api, parts, query, expected) -> None:
    assert browse(api, query)["total"] == expected


def test_label_filter_follows_newest_class(api, parts) -> None:
    image_id = parts["dent/0.png"]
    answer = api.put(f"/api/projects/parts/images/{image_id}/class", json={"class": "scratch", "labeler": "ana"})
    assert answer.status_code == 200
    assert browse(api, "label=scratch")["total"] == 5
    assert browse(api, "label=dent")["total"] == 3
    assert "dent/0.png" in paths(browse(api, "label=scratch"))


def test_labeler_filter_and_list(api, parts) -> None:
    assert api.get("/api/projects/parts/labelers").json() == ["import"]
    answer = api.put(f"/api/projects/parts/images/{parts['ok/2.png']}/class", json={"class": "ok", "labeler": "ana"})
    assert answer.status_code == 200
    assert api.get("/api/projects/parts/labelers").json() == ["ana", "import"]
    assert paths(browse(api, "labeler=ana")) == ["ok/2.png"]
    assert browse(api, "labeler=import")["total"] == 12
    assert browse(api, "labeler=nobody")["total"] == 0


def test_metadata_filter_by_key_and_value(api, parts, workspace) -> None:
    with workspace.session() as session:
        session.execute(update(ImageRow).where(ImageRow.id == parts["ok/0.png"]).values(meta={"station": "A", "lot": 7}))
        session.execute(update(ImageRow).where(ImageRow.id == parts["ok/1.png"]).values(meta={"station": "B"}))
    assert api.get("/api/projects/parts/metadata").json() == {"lot": ["7"], "station": ["A", "B"]}
    assert paths(browse(api, "key=station")) == ["ok/0.png", "ok/1.png"]
    assert paths(browse(api, "key=station&value=B")) == ["ok/1.png"]
    assert paths(browse(api, "key=lot&value=7")) == ["ok/0.png"]


def test_bulk_split_class_and_exclusion(api, parts, workspace) -> None:
    chosen = [parts["ok/0.png"], parts["ok/1.png"]]
    url = "/api/projects/parts/images/bulk"
    split = api.post(url, json={"image_ids": chosen, "action": "set_split", "value": "test", "labeler": "ana"})
    assert split.json() == {"action": "set_split", "changed": 2}
    assert paths(browse(api, "split=test")) == ["ok/0.png", "ok/1.png"]

    relabel = api.post(url, json={"image_ids": chosen, "action": "set_class", "value": "dent", "labeler": "ana"})
    assert relabel.json()["changed"] == 2
    assert browse(api, "label=dent")["total"] == 6

    excluded = api.post(url, json={"image_ids": chosen, "action": "exclude", "labeler": "ana"})
    assert excluded.json()["changed"] == 2
    assert paths(browse(api, "excluded=true")) == ["ok/0.png", "ok/1.png"]
    with workspace.session() as session:
        project = workspace.get_project(session, "parts")
        snapshot = take_snapshot(workspace, session, project)
    assert len(snapshot.images) == 10
    assert "ok/0.png" not in {image.path for image in snapshot.images}


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"image_ids": [], "action": "exclude", "labeler": "ana"}, 400, "body.image_ids"),
    ({"image_ids": [1], "action": "delete", "labeler": "ana"}, 400, "bulk action 'delete' is not known"),
    ({"image_ids": [1], "action": "set_split", "value": "holdout", "labeler": "ana"}, 400, "split 'holdout'"),
    ({"image_ids": [1], "action": "set_class", "value": "crack", "labeler": "ana"}, 400, "class 'crack' is not in"),
    ({"image_ids": [1, 99999], "action": "exclude", "labeler": "ana"}, 404, "image 99999 is not in project"),
    ({"image_ids": [1], "action": "add_tag", "value": "  "}, 400, "the tag is missing or empty"),
    ({"image_ids": [1], "action": "add_tag", "value": "x" * 101}, 400, "the tag has 101 characters; use at most 100"),
    ({"image_ids": [1], "action": "add_tag", "value": "two\nlines"}, 400, "contains a control character"),
])
def test_bulk_rejects_bad_selection(api, parts, body, status, words) -> None:
    answer = api.post("/api/projects/parts/images/bulk", json=body)
    assert answer.status_code == status
    assert words in answer.json()["error"]
    assert browse(api, "excluded=true")["total"] == 0


@pytest.mark.parametrize(("query", "words"), [
    ("sort=size", "sort 'size' is not known"),
    ("page=0", "page 0 is not valid"),
    ("page_size=501", "page size 501 is not valid"),
    ("split=holdout", "split 'holdout' is not valid"),
])
def test_browse_rejects_bad_query(api, parts, query, words) -> None:
    answer = api.get(f"/api/projects/parts/browse?{query}")
    assert answer.status_code == 400
    assert words in answer.json()["error"]


def test_neighbours_follow_filter_and_sort(api, parts) -> None:
    url = f"/api/projects/parts/images/{parts['ok/1.png']}/neighbours"
    assert api.get(f"{url}?label=ok").json() == {"previous": parts["ok/0.png"], "next": parts["ok/2.png"],
                                                 "position": 2, "total": 4}
    assert api.get(f"{url}?label=ok&sort=-path").json()["next"] == parts["ok/0.png"]
    outside = api.get(f"{url}?label=dent").json()
    assert outside == {"previous": None, "next": parts["dent/0.png"], "position": None, "total": 4}


def test_browse_first_page_of_10000_images(workspace) -> None:
    """Generated rows, no files: the page query reads only the rows of its page and their labels."""
    workspace.create_project("large", "classification", ["dent"])
    with workspace.session() as session:
        project = workspace.get_project(session, "large")
        session.add_all(ImageRow(project_id=project.id, path=f"lot/{number:05d}.png", sha256="0" * 64, format="PNG",
                                 width=64, height=64, channels=1, bit_depth=8, meta={"station": str(number % 3)})
                        for number in range(10_000))
    page = browse_images(workspace, "large", ImageFilter(labeled=False, metadata_key="station", metadata_value="2"),
                         page_size=60)
    assert page["total"] == 3333
    assert len(page["images"]) == 60
    assert page["images"][0]["path"] == "lot/00002.png"


def test_low_contrast_16bit_patch_is_visible() -> None:
    generator = np.random.default_rng(3)
    pixels = (900 + generator.normal(0, 5, (256, 256))).astype(np.uint16)
    pixels[100:120, 100:120] = 1150
    view = to_view(pixels, contrast_window(pixels))
    assert view.dtype == np.uint8
    assert view[110, 110] == 255
    assert view[10, 10] < 128


def test_narrow_8bit_image_is_stretched_wide_one_kept() -> None:
    narrow = np.full((64, 64), 120, dtype=np.uint8)
    narrow[:, 32:] = 130
    assert contrast_window(narrow) == (120.0, 130.0)
    assert to_view(narrow, contrast_window(narrow))[0, 40] == 255
    wide = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
    assert contrast_window(wide) == (0.0, 255.0)


def test_thumbnail_of_16bit_image(api, workspace, tmp_path) -> None:
    from defectlab.data.importer import import_path

    pixels = np.full((256, 256), 900, dtype=np.uint16)
    pixels[100:120, 100:120] = 1150
    (tmp_path / "wide" / "good").mkdir(parents=True)
    Image.fromarray(pixels).save(tmp_path / "wide" / "good" / "plate.png")
    workspace.create_project("plates", "anomaly")
    import_path(workspace, "plates", tmp_path / "wide")
    image_id = api.get("/api/projects/plates/images").json()[0]["id"]

    answer = api.get(f"/api/projects/plates/images/{image_id}/thumbnail?size=64")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/png"
    thumb = np.asarray(Image.open(io.BytesIO(answer.content)))
    assert thumb.shape == (64, 64)
    assert thumb[27, 27] > 230
    assert thumb[5, 5] < 20
    assert api.get(f"/api/projects/plates/images/{image_id}/thumbnail?size=64").content == answer.content
    assert api.get(f"/api/projects/plates/images/{image_id}/thumbnail?size=4").status_code == 400


def test_bulk_tags_add_filter_remove(api, parts) -> None:
    chosen = [parts["ok/0.png"], parts["dent/1.png"], parts["scratch/2.png"]]
    versions = {image["id"]: image["version"] for image in browse(api, "page_size=100")["images"]}

    added = api.post("/api/projects/parts/images/bulk", json={"image_ids": chosen, "action": "add_tag",
                                                              "value": " lot 7 glare "})
    again = api.post("/api/projects/parts/images/bulk", json={"image_ids": chosen[:2], "action": "add_tag",
                                                              "value": "lot 7 glare"})

    assert added.json() == {"action": "add_tag", "changed": 3}
    assert again.json() == {"action": "add_tag", "changed": 0}
    tagged = browse(api, "tag=lot 7 glare")
    assert sorted(image["id"] for image in tagged["images"]) == sorted(chosen)
    assert {tuple(image["tags"]) for image in tagged["images"]} == {("lot 7 glare",)}
    assert {image["id"]: image["version"] for image in tagged["images"]} == {i: versions[i] for i in chosen}
    assert api.get("/api/projects/parts/tags").json() == ["lot 7 glare"]
    assert browse(api, "tag=other")["total"] == 0

    removed = api.post("/api/projects/parts/images/bulk", json={"image_ids": [chosen[0], parts["ok/3.png"]],
                                                                "action": "remove_tag", "value": "lot 7 glare"})
    assert removed.json() == {"action": "remove_tag", "changed": 1}
    assert sorted(image["id"] for image in browse(api, "tag=lot 7 glare")["images"]) == sorted(chosen[1:])


def test_outcome_and_score_filters(api, parts, ended_job) -> None:
    trained = ended_job(api.post("/api/projects/parts/training", json={"settings": {"epochs": 2}}).json()["id"])
    assert trained["status"] == "succeeded", trained["error"]
    model_id = trained["result"]["model_id"]
    unevaluated = api.get(f"/api/projects/parts/browse?model={model_id}")
    assert unevaluated.status_code == 400
    assert f"model {model_id} has no finished evaluation yet" in unevaluated.json()["error"]

    started = api.post(f"/api/projects/parts/models/{model_id}/evaluations", json={"split": "train"})
    evaluation = ended_job(started.json()["id"])
    assert evaluation["status"] == "succeeded", evaluation["error"]
    rows = evaluation["result"]["images"]

    everything = browse(api, f"model={model_id}&page_size=100")
    assert sorted(image["id"] for image in everything["images"]) == sorted(row["image_id"] for row in rows)
    by_id = {row["image_id"]: row for row in rows}
    for image in everything["images"]:
        assert image["prediction"]["outcome"] == by_id[image["id"]]["outcome"]
        assert image["prediction"]["score"] == by_id[image["id"]]["score"]
        assert image["prediction"]["split"] == "train"
    for outcome in ("escape", "overkill", "wrong_class", "correct"):
        page = browse(api, f"model={model_id}&outcome={outcome}&page_size=100")
        assert sorted(image["id"] for image in page["images"]) == sorted(
            row["image_id"] for row in rows if row["outcome"] == outcome), outcome
    scores = sorted(row["score"] for row in rows)
    low, high = scores[1], scores[-2]
    page = browse(api, f"model={model_id}&score_min={low}&score_max={high}&page_size=100")
    assert sorted(image["id"] for image in page["images"]) == sorted(
        row["image_id"] for row in rows if low <= row["score"] <= high)


@pytest.mark.parametrize(("query", "words"), [
    ("outcome=escape", "outcome and score filters need a model"),
    ("score_min=0.5", "outcome and score filters need a model"),
    ("model=99", "model 99 is not a model of project 'parts'"),
])
def test_outcome_filter_rejects_bad_query(api, parts, query, words) -> None:
    answer = api.get(f"/api/projects/parts/browse?{query}")
    assert answer.status_code in (400, 404)
    assert words in answer.json()["error"]


@pytest.mark.parametrize(("arguments", "words"), [
    ({"outcome": "missed"}, "outcome 'missed' is not known; use one of: escape, overkill, wrong_class, correct"),
    ({"score_min": 0.8, "score_max": 0.2}, "score_min 0.8 is above score_max 0.2"),
    ({"score_min": float("nan")}, "score_min is nan; give a finite number"),
])
def test_select_evaluated_rejects(arguments, words) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(words)):
        select_evaluated({1: {"outcome": "correct", "score": 0.3}}, **arguments)


def test_select_evaluated_bounds_inclusive() -> None:
    evaluated = {1: {"outcome": "correct", "score": 0.2}, 2: {"outcome": "escape", "score": 0.4},
                 3: {"outcome": "correct", "score": 0.6}}

    assert select_evaluated(evaluated, score_min=0.2, score_max=0.4) == {1, 2}
    assert select_evaluated(evaluated, outcome="correct", score_min=0.3) == {3}
    assert select_evaluated(evaluated) == {1, 2, 3}
