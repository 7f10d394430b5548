"""A whole consensus round through the REST API: blind labeling, agreement, review and settling."""

from __future__ import annotations

import pytest

# Image-level classes each labeler gives, per image of the task (dent/0, dent/1, ok/0, scratch/0).
GIVEN = {"ana": ["dent", "dent", "ok", "scratch"], "ben": ["dent", "ok", "ok", "dent"]}
TASK = "/api/projects/parts/tasks/round-1"


def label_blind(api, headers: dict[str, str], labeler: str, ids: list[int]) -> None:
    """Label, as ``labeler`` signed in with ``headers``, every image the task hands them, in the order ``next``
    gives them."""
    for _ in ids:
        offered = api.get(f"{TASK}/next", headers=headers)
        assert offered.status_code == 200
        assert set(offered.json()) == {"image_id", "path", "width", "height", "position", "images", "left"}
        image_id = offered.json()["image_id"]
        class_name = GIVEN[labeler][ids.index(image_id)]
        stored = api.put(f"{TASK}/images/{image_id}/annotations", json={"class": class_name}, headers=headers)
        assert stored.status_code == 200
        assert stored.json() == [{"kind": "class", "class": class_name}]
    assert api.get(f"{TASK}/next", headers=headers).json() is None


def test_consensus_round_through_api(api, parts, person) -> None:
    ids = [parts["dent/0.png"], parts["dent/1.png"], parts["ok/0.png"], parts["scratch/0.png"]]
    created = api.post("/api/projects/parts/tasks",
                       json={"name": "round-1", "labelers": ["ana", "ben"], "image_ids": ids})
    assert created.status_code == 201
    assert (created.json()["images"], created.json()["created_by"]) == (4, "ana")

    ben = person("ben", "labeler")
    label_blind(api, person("ana"), "ana", ids)
    for image_id in ids:
        assert api.get(f"{TASK}/images/{image_id}/annotations", headers=ben).json() == []
        blind = api.get(f"{TASK}/images/{image_id}/annotations", params={"labeler": "ana"}, headers=ben)
        assert (blind.status_code, blind.json()["error"][:28]) == (403, "labeling tasks are blind: 'b")
    label_blind(api, ben, "ben", ids)
    for labeler, classes in GIVEN.items():
        for image_id, class_name in zip(ids, classes):
            view = api.get(f"{TASK}/images/{image_id}/annotations", params={"labeler": labeler}).json()
            assert view == [{"kind": "class", "class": class_name}]
    progress = api.get(TASK).json()["progress"]
    assert progress == {"ana": {"done": 4, "left": 0}, "ben": {"done": 4, "left": 0}}

    classes = api.get(f"{TASK}/agreement").json()["classes"]
    # Nominal alpha: 8 pairable values (dent 4, ok 3, scratch 1), 4 of them in disagreeing pairs, so
    # D_o = 4/8 and D_e = 2 * (4*3 + 4*1 + 3*1) / (8*7) = 38/56, and alpha = 1 - D_o/D_e = 5/19.
    assert classes["alpha"] == pytest.approx(5 / 19, abs=1e-6)
    # Kappa: observed 2/4; by chance (2*2 + 1*2 + 1*0) / 16 = 6/16, so (0.5 - 0.375) / 0.625 = 0.2.
    assert classes["kappa_by_pair"] == [{"labelers": ["ana", "ben"], "images": 4, "kappa": pytest.approx(0.2)}]
    by_labeler = {row["labeler"]: row for row in classes["by_labeler"]}
    # Each is measured against the other: ben called 1 of ana's 3 defective images ok, and ana
    # called 1 of ben's 2 ok images defective.
    assert by_labeler["ben"]["escape_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert by_labeler["ben"]["overkill_rate"] == pytest.approx(0.0)
    assert by_labeler["ana"]["escape_rate"] == pytest.approx(0.0)
    assert by_labeler["ana"]["overkill_rate"] == pytest.approx(0.5)

    ambiguous = api.post(f"{TASK}/images/{parts['dent/1.png']}/settle",
                         json={"ambiguous": True, "note": "shallow dent"}, headers=person("rita", "reviewer"))
    assert ambiguous.status_code == 200
    assert (ambiguous.json()["outcome"], ambiguous.json()["class"]) == ("ambiguous", "dent")
    examples = api.get("/api/projects/parts/book/dent").json()["examples"]
    assert [(e["image_id"], e["role"]) for e in examples] == [(parts["dent/1.png"], "borderline")]
    assert examples[0]["note"].startswith("shallow dent")
    assert api.get(f"/api/projects/parts/images/{parts['dent/1.png']}").json()["label"] == "dent"

    before = api.get(f"/api/projects/parts/images/{parts['scratch/0.png']}").json()
    assert before["label"] == "scratch"
    settled = api.post(f"{TASK}/images/{parts['scratch/0.png']}/settle", json={"class": "dent"},
                       headers=person("rita", "reviewer"))
    assert (settled.json()["outcome"], settled.json()["reviewer"]) == ("label", "rita")
    after = api.get(f"/api/projects/parts/images/{parts['scratch/0.png']}").json()
    assert after["label"] == "dent"
    assert after["version"] == before["version"] + 1

    agreed = api.post(f"{TASK}/settle-agreed", json={}, headers=person("rita", "reviewer"))
    assert agreed.json() == {"settled": 2, "left": 0}
    review = api.get(f"{TASK}/review").json()
    assert {row["image_id"]: row["decision"]["outcome"] for row in review} == {
        parts["dent/0.png"]: "label", parts["dent/1.png"]: "ambiguous", parts["ok/0.png"]: "label",
        parts["scratch/0.png"]: "label"}


def test_labeler_not_in_task_is_not_found(api, parts) -> None:
    api.post("/api/projects/parts/tasks", json={"name": "round-1", "labelers": ["ana", "ben"]})
    answer = api.get(f"{TASK}/next", params={"labeler": "cem"})
    assert answer.status_code == 404
    assert answer.json() == {"error": "'cem' is not a labeler of task 'round-1'; its labelers: ana, ben"}


@pytest.mark.parametrize(("body", "words"), [
    ({"labeler": "ana"}, "give either one class for the whole image"),
    ({"labeler": "ana", "class": "ok", "regions": [{"class": "dent", "box": [1, 1, 4, 4]}]}, "not both"),
    ({"labeler": "ana", "regions": [{"class": "dent", "box": [1, 1, 4]}]}, "region 1: box must have 4 numbers"),
    ({"labeler": "ana", "regions": [{"class": "dent", "square": [1, 1, 4, 4]}]},
     "body.regions.0.square: Extra inputs are not permitted"),
    ({"labeler": "", "class": "ok"}, "body.labeler: String should have at least 1 character"),
    ({"labeler": "ana", "class": "crack"}, "class 'crack' is not in the project"),
])
def test_bad_annotation_names_field(api, parts, body, words) -> None:
    api.post("/api/projects/parts/tasks", json={"name": "round-1", "labelers": ["ana", "ben"]})
    answer = api.put(f"{TASK}/images/{parts['dent/0.png']}/annotations", json=body)
    assert answer.status_code == 400
    assert words in answer.json()["error"]
