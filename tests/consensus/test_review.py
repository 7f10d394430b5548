"""Reviewing a labeling task: agreement, per-labeler escapes, settling into labels and the defect book."""

from __future__ import annotations

import pytest

from defectlab.book import read_entry
from defectlab.consensus import annotate, create_task, review_task, settle, settle_agreed, task_agreement
from defectlab.data.importer import import_path
from defectlab.data.labels import list_images
from defectlab.errors import InvalidInputError


def labels_of(workspace, project: str = "parts") -> dict[str, str | None]:
    return {row["path"]: row["label"] for row in list_images(workspace, project)}


def test_one_labeler_started_gets_a_clear_message(workspace, project) -> None:
    create_task(workspace, "parts", "round-1", ["ana", "ben", "cem"], created_by="lead")
    annotate(workspace, "parts", "round-1", project["dent/0.png"], "ana", class_name="dent")
    with pytest.raises(InvalidInputError, match=r"1 has started; waiting for: ben \(0 of 6 labeled\), cem"):
        task_agreement(workspace, "parts", "round-1")


def test_labeler_missing_30_percent_shown(workspace, tmp_path, write_images) -> None:
    write_images(tmp_path / "lot", {"ok": 10, "dent": 10})
    workspace.create_project("lot", "classification")
    import_path(workspace, "lot", tmp_path / "lot")
    truth = {row["id"]: row["label"] for row in list_images(workspace, "lot")}
    create_task(workspace, "lot", "audit", ["ana", "ben", "cem"], created_by="lead")
    missed = sorted(i for i, label in truth.items() if label == "dent")[:3]
    for image_id, label in truth.items():
        annotate(workspace, "lot", "audit", image_id, "ana", class_name=label)
        annotate(workspace, "lot", "audit", image_id, "cem", class_name=label)
        annotate(workspace, "lot", "audit", image_id, "ben", class_name="ok" if image_id in missed else label)

    result = task_agreement(workspace, "lot", "audit")["classes"]
    by_name = {row["labeler"]: row for row in result["by_labeler"]}
    assert by_name["ben"]["escape_rate"] == pytest.approx(0.3)
    assert by_name["ana"]["escape_rate"] == 0.0
    assert by_name["cem"]["escape_rate"] == 0.0
    assert by_name["ben"]["overkill_rate"] == 0.0
    assert by_name["ben"]["confusion"] == {"dent -> dent": 7, "dent -> ok": 3, "ok -> ok": 10}
    assert [row["image_id"] for row in result["least_agreed"][:3]] == missed


def test_settling_makes_labels_and_borderline_examples(workspace, project) -> None:
    create_task(workspace, "parts", "round-1", ["ana", "ben"], created_by="lead",
                image_ids=[project["dent/0.png"], project["dent/1.png"], project["ok/0.png"]])
    annotate(workspace, "parts", "round-1", project["dent/0.png"], "ana", class_name="scratch")
    annotate(workspace, "parts", "round-1", project["dent/0.png"], "ben", class_name="scratch")
    annotate(workspace, "parts", "round-1", project["dent/1.png"], "ana", class_name="ok")
    annotate(workspace, "parts", "round-1", project["dent/1.png"], "ben", class_name="dent")
    annotate(workspace, "parts", "round-1", project["ok/0.png"], "ana", class_name="ok")
    annotate(workspace, "parts", "round-1", project["ok/0.png"], "ben", class_name="scratch")

    assert settle_agreed(workspace, "parts", "round-1", reviewer="lead") == {"settled": 1, "left": 2}
    assert labels_of(workspace)["dent/0.png"] == "scratch"
    rows = review_task(workspace, "parts", "round-1")
    assert [row["path"] for row in rows] == ["dent/1.png", "ok/0.png", "dent/0.png"]
    assert rows[0]["labels"] == {"ana": "ok", "ben": "dent"}
    assert rows[0]["decision"] is None
    assert rows[2]["decision"]["reviewer"] == "lead"
    assert rows[2]["decision"]["outcome"] == "label"

    settle(workspace, "parts", "round-1", project["dent/1.png"], reviewer="lead", ambiguous=True,
           note="dent or reflection?")
    entry = read_entry(workspace, "parts", "dent")
    assert entry["examples"][0]["role"] == "borderline"
    assert entry["examples"][0]["note"] == ("dent or reflection? (labelers disagreed in task round-1: "
                                            "ana ok, ben dent)")
    assert entry["author"] == "lead"
    assert labels_of(workspace)["dent/1.png"] == "dent"

    decision = settle(workspace, "parts", "round-1", project["ok/0.png"], reviewer="lead", labeler="ana")
    assert decision["class"] == "ok"
    assert decision["labeler"] == "ana"
    assert labels_of(workspace)["ok/0.png"] == "ok"

    by_name = {row["labeler"]: row for row in task_agreement(workspace, "parts", "round-1")["classes"]["by_labeler"]}
    # Against the reviewer: ok/0 settled ok (ben gave scratch: an overkill); dent/1 is ambiguous, so the
    # reference there is the other labeler's label (ana for ben: ok, so ben's dent counts as overkill too).
    assert by_name["ben"]["overkill_rate"] == pytest.approx(1.0)
    assert by_name["ana"]["overkill_rate"] == pytest.approx(0.0)


def test_settling_needs_something_to_decide_from(workspace, project) -> None:
    create_task(workspace, "parts", "round-1", ["ana", "ben"], created_by="lead", image_ids=[project["dent/0.png"]])
    annotate(workspace, "parts", "round-1", project["dent/0.png"], "ana", class_name="ok")
    annotate(workspace, "parts", "round-1", project["dent/0.png"], "ben", class_name="ok")
    with pytest.raises(InvalidInputError, match="give the final class, or the labeler"):
        settle(workspace, "parts", "round-1", project["dent/0.png"], reviewer="lead")
    with pytest.raises(InvalidInputError, match="say which class image .* is borderline for"):
        settle(workspace, "parts", "round-1", project["dent/0.png"], reviewer="lead", ambiguous=True)
    with pytest.raises(InvalidInputError, match="'cem' has not labeled image"):
        settle(workspace, "parts", "round-1", project["dent/0.png"], reviewer="lead", labeler="cem")
    assert labels_of(workspace)["dent/0.png"] == "dent"


def test_chosen_regions_become_label(workspace, tmp_path, write_images) -> None:
    write_images(tmp_path / "plates", {"plates": 3}, size=32)
    workspace.create_project("plates", "segmentation", ["pit"])
    import_path(workspace, "plates", tmp_path / "plates" / "plates", format="folders")
    ids = sorted(row["id"] for row in list_images(workspace, "plates"))
    create_task(workspace, "plates", "pits", ["ana", "ben"], created_by="lead")
    pit = {"class": "pit", "box": [2, 2, 12, 12]}
    annotate(workspace, "plates", "pits", ids[0], "ana", regions=[pit])
    annotate(workspace, "plates", "pits", ids[0], "ben", regions=[{"class": "pit", "box": [2, 2, 12, 7]}])
    annotate(workspace, "plates", "pits", ids[1], "ana", regions=[pit, {"class": "pit", "box": [20, 20, 30, 30]}])
    annotate(workspace, "plates", "pits", ids[1], "ben", regions=[pit])
    annotate(workspace, "plates", "pits", ids[2], "ana", class_name="ok")
    annotate(workspace, "plates", "pits", ids[2], "ben", class_name="ok")

    regions = task_agreement(workspace, "plates", "pits")["regions"]
    # Image 0: IoU 50/100 = 0.5 meets the threshold: 2*1/(1+1) = 1. Image 1: 2*1/(2+1) = 2/3. Image 2: both empty = 1.
    assert regions["mean_agreement"] == pytest.approx((1 + 2 / 3 + 1) / 3, abs=1e-6)
    assert regions["least_agreed"][0]["image_id"] == ids[1]

    assert settle_agreed(workspace, "plates", "pits", reviewer="lead") == {"settled": 2, "left": 1}
    settle(workspace, "plates", "pits", ids[1], reviewer="lead", labeler="ana")
    with workspace.session() as session:
        from defectlab.workspace.schema import Image

        drawn = [(a.kind, a.defect_class.name, a.geometry) for a in session.get(Image, ids[1]).annotations]
        empty = [(a.kind, a.defect_class.name) for a in session.get(Image, ids[2]).annotations]
    assert drawn == [("box", "pit", [2.0, 2.0, 12.0, 12.0]), ("box", "pit", [20.0, 20.0, 30.0, 30.0])]
    assert empty[-1] == ("class", "ok")

