"""The defect book: versioned entries, decision rules checked field by field, examples, conflicts."""

from __future__ import annotations

import pytest

from defectlab.book import add_example, entry_history, read_book, read_entry, remove_example, update_entry
from defectlab.errors import ConflictError, InvalidInputError, NotFoundError


def test_each_change_adds_readable_version(workspace, project) -> None:
    assert read_entry(workspace, "parts", "dent")["version"] == 0
    update_entry(workspace, "parts", "dent", author="ana", definition="A dent deeper than the surface finish.")
    update_entry(workspace, "parts", "dent", author="ben", rule={"min_length": 2, "unit": "mm", "pixel_size_mm": 0.1},
                 based_on=1)
    add_example(workspace, "parts", "dent", project["dent/0.png"], role="borderline", author="ana", note="shallow")

    newest = read_entry(workspace, "parts", "dent")
    assert newest["version"] == 3
    assert newest["definition"] == "A dent deeper than the surface finish."
    assert newest["rule"] == {"min_length": 2.0, "unit": "mm", "pixel_size_mm": 0.1}
    assert newest["examples"] == [
        {"image_id": project["dent/0.png"], "path": "dent/0.png", "role": "borderline", "note": "shallow"}]
    first = read_entry(workspace, "parts", "dent", version=1)
    assert first["rule"] == {}
    assert first["examples"] == []
    assert first["author"] == "ana"
    history = entry_history(workspace, "parts", "dent")
    assert [(row["version"], row["author"]) for row in history] == [(1, "ana"), (2, "ben"), (3, "ana")]
    assert history[1]["change"] == "changed the decision rule"
    assert [entry["class"] for entry in read_book(workspace, "parts")] == ["ok", "dent", "scratch"]


def test_stale_change_is_conflict(workspace, project) -> None:
    update_entry(workspace, "parts", "dent", author="ana", definition="first")
    update_entry(workspace, "parts", "dent", author="ben", definition="second", based_on=1)
    with pytest.raises(ConflictError, match="version 2, not 1"):
        update_entry(workspace, "parts", "dent", author="ana", definition="third", based_on=1)
    assert read_entry(workspace, "parts", "dent")["definition"] == "second"


@pytest.mark.parametrize(("rule", "message"), [
    ({"min_lenght": 3}, "'min_lenght' is not known"),
    ({"min_area": -1}, "'min_area' must be a number of 0 or more"),
    ({"min_area": "big"}, "'min_area' must be a number"),
    ({"unit": "inch"}, "'unit' must be 'px' or 'mm'"),
    ({"unit": "mm", "min_length": 2}, "needs 'pixel_size_mm'"),
])
def test_bad_rule_names_the_field(workspace, project, rule, message) -> None:
    with pytest.raises(InvalidInputError, match=message):
        update_entry(workspace, "parts", "dent", author="ana", rule=rule)
    assert read_entry(workspace, "parts", "dent")["version"] == 0


def test_examples_are_linked_once_and_can_be_removed(workspace, project) -> None:
    add_example(workspace, "parts", "scratch", project["scratch/0.png"], role="example", author="ana")
    add_example(workspace, "parts", "scratch", project["scratch/0.png"], role="counter_example", author="ana",
                note="a fibre")
    assert [e["role"] for e in read_entry(workspace, "parts", "scratch")["examples"]] == ["counter_example"]
    remove_example(workspace, "parts", "scratch", project["scratch/0.png"], author="ana")
    assert read_entry(workspace, "parts", "scratch")["examples"] == []
    assert read_entry(workspace, "parts", "scratch")["version"] == 3
    with pytest.raises(NotFoundError, match="not an example"):
        remove_example(workspace, "parts", "scratch", project["scratch/0.png"], author="ana")
    with pytest.raises(InvalidInputError, match="role 'sample' is not valid"):
        add_example(workspace, "parts", "scratch", project["scratch/0.png"], role="sample", author="ana")
    with pytest.raises(NotFoundError, match="class 'crack' is not in project"):
        read_entry(workspace, "parts", "crack")
    with pytest.raises(NotFoundError, match="no version 7"):
        read_entry(workspace, "parts", "scratch", version=7)
