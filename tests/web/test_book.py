"""The defect book through the REST API: versions, conflicts, decision rules and examples."""

from __future__ import annotations

import pytest

ENTRY = "/api/projects/parts/book/dent"


def test_changes_add_versions_readable_later(api, parts, person) -> None:
    first = api.patch(ENTRY, json={"author": "ana", "definition": "A dent deeper than the surface finish."})
    assert first.status_code == 200
    assert (first.json()["version"], first.json()["change"]) == (1, "changed the definition")
    rule = {"min_length": 2, "unit": "mm", "pixel_size_mm": 0.1}
    second = api.patch(ENTRY, json={"rule": rule, "based_on": 1}, headers=person("ben"))
    assert second.json()["rule"] == {"min_length": 2.0, "unit": "mm", "pixel_size_mm": 0.1}

    removed = api.patch(ENTRY, json={"rule": {"unit": "px", "pixel_size_mm": None}}, headers=person("ben"))
    assert removed.json()["rule"] == {"min_length": 2.0, "unit": "px"}
    assert api.get(ENTRY, params={"version": 1}).json()["rule"] == {}
    history = api.get(f"{ENTRY}/history").json()
    assert [(row["version"], row["author"]) for row in history] == [(1, "ana"), (2, "ben"), (3, "ben")]
    assert [entry["class"] for entry in api.get("/api/projects/parts/book").json()] == ["ok", "dent", "scratch"]
    missing = api.get(ENTRY, params={"version": 7})
    assert missing.status_code == 404
    assert missing.json() == {"error": "the defect book entry of 'dent' has no version 7; its versions are 0 to 3"}


def test_stale_change_is_409_with_message(api, parts, person) -> None:
    api.patch(ENTRY, json={"author": "ana", "definition": "first"})
    api.patch(ENTRY, json={"definition": "second", "based_on": 1}, headers=person("ben"))

    stale = api.patch(ENTRY, json={"author": "ana", "definition": "third", "based_on": 1})
    assert stale.status_code == 409
    assert stale.json() == {"error": "the defect book entry of 'dent' is at version 2, not 1: someone changed it "
                                     "since; read it again and repeat the change"}
    assert api.get(ENTRY).json()["definition"] == "second"


@pytest.mark.parametrize(("body", "words"), [
    ({"author": "ana", "rule": {"min_lenght": 3}}, "body.rule.min_lenght: Extra inputs are not permitted"),
    ({"author": "ana", "rule": {"min_area": -1}}, "decision rule field 'min_area' must be a number of 0 or more"),
    ({"author": "ana", "rule": {"unit": "mm"}}, "a decision rule in millimetres needs 'pixel_size_mm'"),
    ({"author": "  ", "definition": "x"}, "body.author: String should have at least 1 character"),
    ({"author": "ana"}, "nothing to change in the defect book entry of 'dent'"),
])
def test_bad_change_is_400_naming_field(api, parts, body, words) -> None:
    answer = api.patch(ENTRY, json=body)
    assert answer.status_code == 400
    assert words in answer.json()["error"]


def test_examples_linked_and_unlinked(api, parts, person) -> None:
    image_id = parts["dent/3.png"]
    linked = api.post(f"{ENTRY}/examples", json={"image_id": image_id, "role": "counter_example", "author": "ana",
                                                  "note": "a shadow, not a dent"})
    assert linked.status_code == 201
    assert linked.json()["examples"] == [{"image_id": image_id, "path": "dent/3.png", "role": "counter_example",
                                          "note": "a shadow, not a dent"}]
    bad_role = api.post(f"{ENTRY}/examples", json={"image_id": image_id, "role": "typical", "author": "ana"})
    assert bad_role.status_code == 400
    assert "example role 'typical' is not valid" in bad_role.json()["error"]

    unlinked = api.delete(f"{ENTRY}/examples/{image_id}", headers=person("ben"))
    assert unlinked.json()["examples"] == []
    assert api.delete(f"{ENTRY}/examples/{image_id}", headers=person("ben")).status_code == 404
    history = api.get(f"{ENTRY}/history").json()
    assert [(row["author"], row["change"][:8]) for row in history] == [("ana", "added de"), ("ben", "removed ")]


def test_unknown_class_is_404(api, parts) -> None:
    answer = api.get("/api/projects/parts/book/crack")
    assert answer.status_code == 404
    assert answer.json() == {"error": "class 'crack' is not in project 'parts'; its classes are: ok, dent, scratch"}


def test_class_name_with_slash_reachable(api, parts) -> None:
    api.post("/api/projects/parts/classes", json={"names": ["chip/crack"]})
    changed = api.patch("/api/projects/parts/book/chip%2Fcrack", json={"author": "ana", "definition": "x"})
    assert changed.status_code == 200
    assert changed.json()["class"] == "chip/crack"
    history = api.get("/api/projects/parts/book/chip%2Fcrack/history").json()
    assert [row["version"] for row in history] == [1]
    linked = api.post("/api/projects/parts/book/chip%2Fcrack/examples",
                      json={"image_id": parts["dent/0.png"], "author": "ana"})
    assert linked.status_code == 201
    unlinked = api.delete(f"/api/projects/parts/book/chip%2Fcrack/examples/{parts['dent/0.png']}",
                          params={"author": "ana"})
    assert unlinked.json()["version"] == 3
