"""Proposals: made from a few labels, stored apart, reviewed by a person, never trained on unreviewed."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from defectlab.data.annotations import save_annotations
from defectlab.data.importer import import_path
from defectlab.data.labels import list_images, set_image_class
from defectlab.errors import ConflictError, InvalidInputError, NotFoundError
from defectlab.proposals import (
    fewshot,
    list_proposals,
    make_proposals,
    next_proposal,
    proposal_report,
    refresh_due,
    review_proposal,
)
from defectlab.proposals.refresh import MIN_NEW_LABELS, REFRESH_GROWTH
from defectlab.samples import draw_part
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Proposal

CLASSES = ("ok", "scratch", "spot")
LABELED = 5
UNLABELED = 8


def write_parts(folder: Path, count: int, seed: int) -> None:
    """Write ``count`` generated parts of each class into one folder per class."""
    rng = np.random.default_rng(seed)
    for name in CLASSES:
        (folder / name).mkdir(parents=True, exist_ok=True)
        for number in range(count):
            pixels, _ = draw_part(rng, size=96, defect=None if name == "ok" else name)
            Image.fromarray(pixels).save(folder / name / f"{seed}_{number}.png")


def unlabel(workspace: Workspace, prefix: str) -> None:
    """Remove the label of every image whose file name starts with ``prefix``."""
    for row in list_images(workspace, "parts"):
        if Path(row["path"]).name.startswith(prefix):
            save_annotations(workspace, "parts", row["id"], labeler="test", version=row["version"])


@pytest.fixture(scope="module")
def proposed(tmp_path_factory) -> tuple[Path, dict]:
    """A workspace with 5 labeled and 8 unlabeled parts per class, proposals made; return it and the summary."""
    root = tmp_path_factory.mktemp("proposed")
    write_parts(root / "source", LABELED, seed=1)
    write_parts(root / "source", UNLABELED, seed=2)
    workspace = Workspace.open(root / "workspace")
    workspace.create_project("parts", "classification", ["scratch", "spot"])
    import_path(workspace, "parts", root / "source")
    unlabel(workspace, "2_")
    summary = make_proposals(workspace, "parts", source="features", blind_share=0.25, seed=3)
    workspace.close()
    return root / "workspace", summary


@pytest.fixture
def copy(proposed, tmp_path: Path) -> Workspace:
    """A private copy of the proposed workspace, so each test changes its own."""
    shutil.copytree(proposed[0], tmp_path / "workspace")
    opened = Workspace.open(tmp_path / "workspace")
    yield opened
    opened.close()


def test_every_unlabeled_image_gets_one_proposal(proposed, copy) -> None:
    summary = proposed[1]
    unlabeled = list_images(copy, "parts", unlabeled=True)

    assert summary["source"] == "features"
    assert summary["proposed"] == len(unlabeled) == 3 * UNLABELED
    rows = list_proposals(copy, "parts")
    assert sorted(row["image_id"] for row in rows) == sorted(row["id"] for row in unlabeled)
    assert sum(summary["by_class"].values()) == 3 * UNLABELED
    assert summary["blind"] == sum(row["blind"] for row in rows)


def test_near_copy_takes_labeled_class(tmp_path: Path, monkeypatch) -> None:
    write_parts(tmp_path / "source", LABELED, seed=1)
    original = tmp_path / "source" / "spot" / "1_0.png"
    brighter = np.clip(np.asarray(Image.open(original), dtype=np.int16) + 25, 0, 255).astype(np.uint8)
    Image.fromarray(brighter).save(tmp_path / "source" / "spot" / "2_brighter.png")  # the same part, brighter
    workspace = Workspace.open(tmp_path / "workspace")
    workspace.create_project("parts", "classification", ["scratch", "spot"])
    import_path(workspace, "parts", tmp_path / "source")
    unlabel(workspace, "2_")
    # The heads guess wrong here, so only the near copy can make the proposal right.
    monkeypatch.setattr(fewshot, "guess_classes", lambda labeled, labels, unlabeled, *args, **kwargs:
                        [fewshot.Guess("ok", 0.6)] * len(unlabeled[0]))

    make_proposals(workspace, "parts", source="features", blind_share=0.0)

    [proposal] = list_proposals(workspace, "parts")
    assert (proposal["label"], proposal["confidence"]) == ("spot", pytest.approx(0.99, abs=0.01))
    workspace.close()


def test_five_labels_mostly_right(copy) -> None:
    paths = {row["id"]: row["path"] for row in list_images(copy, "parts")}
    with copy.session() as session:
        pairs = [(proposal.label, Path(paths[proposal.image_id]).parent.name)
                 for proposal in session.scalars(select(Proposal)).all()]

    right = sum(label == truth for label, truth in pairs)
    # Scratches, spots and good parts differ plainly; a few errors are allowed, where chance would be a third.
    assert right / len(pairs) >= 0.8


def test_proposals_are_not_labels(copy) -> None:
    assert len(list_images(copy, "parts", unlabeled=True)) == 3 * UNLABELED


def test_open_blind_proposals_hide_their_label(copy) -> None:
    rows = list_proposals(copy, "parts")
    blind = [row for row in rows if row["blind"]]
    shown = [row for row in rows if not row["blind"]]

    assert blind
    assert shown
    assert all(row["label"] is None for row in blind)
    assert all(row["confidence"] is None for row in blind)
    assert all(row["label"] in CLASSES for row in shown)
    assert all(0 < row["confidence"] <= 1 for row in shown)


def test_next_is_the_least_confident(copy) -> None:
    with copy.session() as session:
        lowest = session.scalars(select(Proposal).order_by(Proposal.confidence, Proposal.id)).first()
        lowest_id = lowest.id

    found = next_proposal(copy, "parts")

    assert found["id"] == lowest_id
    assert found["remaining"] == 3 * UNLABELED


def shown_proposal(workspace: Workspace) -> dict:
    return next(row for row in list_proposals(workspace, "parts") if not row["blind"])


def blind_proposal(workspace: Workspace) -> dict:
    return next(row for row in list_proposals(workspace, "parts") if row["blind"])


def label_of(workspace: Workspace, image_id: int) -> str | None:
    return next(row["label"] for row in list_images(workspace, "parts") if row["id"] == image_id)


def test_accept_stores_proposed_label(copy) -> None:
    proposal = shown_proposal(copy)

    settled = review_proposal(copy, "parts", proposal["id"], reviewer="ann", action="accept")

    assert settled["status"] == "accepted"
    assert settled["answer"] == proposal["label"]
    assert label_of(copy, proposal["image_id"]) == proposal["label"]
    with copy.session() as session:
        from defectlab.workspace.schema import Image

        annotations = session.get(Image, proposal["image_id"]).annotations
        assert [(a.kind, a.labeler) for a in annotations] == [("class", "ann")]


def test_correct_stores_the_reviewers_class(copy) -> None:
    proposal = shown_proposal(copy)
    other = next(name for name in CLASSES if name != proposal["label"])

    settled = review_proposal(copy, "parts", proposal["id"], reviewer="ann", action="correct", class_name=other)

    assert settled["status"] == "corrected"
    assert settled["answer"] == other
    assert label_of(copy, proposal["image_id"]) == other


def test_reject_leaves_the_image_unlabeled(copy) -> None:
    proposal = shown_proposal(copy)

    settled = review_proposal(copy, "parts", proposal["id"], reviewer="ann", action="reject")

    assert settled["status"] == "rejected"
    assert label_of(copy, proposal["image_id"]) is None


def test_blind_check_records_agreement(copy) -> None:
    proposal = blind_proposal(copy)
    with copy.session() as session:
        hidden = session.get(Proposal, proposal["id"]).label

    with pytest.raises(InvalidInputError, match="blind check"):
        review_proposal(copy, "parts", proposal["id"], reviewer="ann", action="accept")
    settled = review_proposal(copy, "parts", proposal["id"], reviewer="ann", action="correct", class_name=hidden)

    assert settled["label"] == hidden
    assert settled["agrees"] is True
    assert label_of(copy, proposal["image_id"]) == hidden


def test_proposal_reviewed_only_once(copy) -> None:
    proposal = shown_proposal(copy)
    review_proposal(copy, "parts", proposal["id"], reviewer="ann", action="reject")

    with pytest.raises(ConflictError, match="already rejected by ann"):
        review_proposal(copy, "parts", proposal["id"], reviewer="bob", action="accept")


def test_label_given_meanwhile_kept(copy) -> None:
    proposal = shown_proposal(copy)
    other = next(name for name in CLASSES if name != proposal["label"])
    set_image_class(copy, "parts", proposal["image_id"], other, labeler="bob")

    with pytest.raises(ConflictError, match="was labeled since"):
        review_proposal(copy, "parts", proposal["id"], reviewer="ann", action="accept")
    assert label_of(copy, proposal["image_id"]) == other


def test_labeled_image_proposal_is_superseded(copy) -> None:
    first = next_proposal(copy, "parts")
    set_image_class(copy, "parts", first["image_id"], "ok", labeler="bob")

    following = next_proposal(copy, "parts")

    assert following["id"] != first["id"]
    assert following["remaining"] == 3 * UNLABELED - 1
    statuses = {row["id"]: row["status"] for row in list_proposals(copy, "parts", status=None)}
    assert statuses[first["id"]] == "superseded"
    assert proposal_report(copy, "parts")["by_status"]["superseded"] == 1


@pytest.mark.parametrize(("action", "class_name", "message"), [
    ("approve", None, "action 'approve' is invalid"),
    ("correct", None, "needs the right class"),
    ("correct", "dent", "class 'dent' is not in project"),
])
def test_invalid_reviews_change_nothing(copy, action, class_name, message) -> None:
    proposal = shown_proposal(copy)

    with pytest.raises(InvalidInputError, match=message):
        review_proposal(copy, "parts", proposal["id"], reviewer="ann", action=action, class_name=class_name)
    assert label_of(copy, proposal["image_id"]) is None
    assert next(row for row in list_proposals(copy, "parts") if row["id"] == proposal["id"])["status"] == "open"


def test_unknown_proposal_is_not_found(copy) -> None:
    with pytest.raises(NotFoundError, match="proposal 9999 is not in project 'parts'"):
        review_proposal(copy, "parts", 9999, reviewer="ann", action="accept")


def test_proposing_again_keeps_reviewed(copy) -> None:
    first = shown_proposal(copy)
    review_proposal(copy, "parts", first["id"], reviewer="ann", action="accept")

    summary = make_proposals(copy, "parts", source="features", seed=4)

    assert summary["proposed"] == 3 * UNLABELED - 1
    every = list_proposals(copy, "parts", status=None)
    assert [row["status"] for row in every if row["id"] == first["id"]] == ["accepted"]
    assert sum(row["status"] == "open" for row in every) == 3 * UNLABELED - 1
    assert sum(row["status"] == "replaced" for row in every) == 3 * UNLABELED - 1
    assert len(every) == 1 + 2 * (3 * UNLABELED - 1)


def test_replaced_proposal_cannot_be_reviewed(copy) -> None:
    old = shown_proposal(copy)
    make_proposals(copy, "parts", source="features", seed=4)

    with pytest.raises(ConflictError, match="replaced by a newer proposal"):
        review_proposal(copy, "parts", old["id"], reviewer="ann", action="accept")
    assert label_of(copy, old["image_id"]) is None
    assert proposal_report(copy, "parts")["by_status"]["replaced"] == 3 * UNLABELED


def test_run_records_what_it_learned_from(proposed, copy) -> None:
    with copy.session() as session:
        stored = session.scalars(select(Proposal)).all()

    assert {proposal.labeled_images for proposal in stored} == {3 * LABELED}
    assert {proposal.blind_share for proposal in stored} == {0.25}


def review_truthfully(workspace: Workspace, count: int) -> None:
    """Settle the next ``count`` open proposals as a reviewer who labels each image with its folder's class."""
    for _ in range(count):
        proposal = next_proposal(workspace, "parts")
        true = Path(proposal["path"]).parent.name
        action = "accept" if proposal["label"] == true else "correct"
        review_proposal(workspace, "parts", proposal["id"], reviewer="ann", action=action,
                        class_name=None if action == "accept" else true)


def test_refresh_due_after_enough_new_labels(copy) -> None:
    needed = max(MIN_NEW_LABELS, math.ceil(REFRESH_GROWTH * 3 * LABELED))
    assert needed < 3 * UNLABELED

    review_truthfully(copy, needed - 1)
    assert refresh_due(copy, "parts") is None

    review_truthfully(copy, 1)
    due = refresh_due(copy, "parts")
    assert due == {"source": "features", "blind_share": 0.25, "labeled_images": 3 * LABELED + needed,
                   "learned_from": 3 * LABELED}

    make_proposals(copy, "parts", source=due["source"], blind_share=due["blind_share"])
    assert refresh_due(copy, "parts") is None


@pytest.mark.parametrize(("source", "learned_from"), [("model 1", 0), ("features", None)])
def test_refresh_never_due_for_model_or_unknown(copy, source, learned_from) -> None:
    with copy.session() as session:
        for proposal in session.scalars(select(Proposal)).all():
            proposal.source, proposal.labeled_images = source, learned_from

    review_truthfully(copy, 3 * UNLABELED - 1)

    assert refresh_due(copy, "parts") is None


def test_refresh_needs_open_proposals(copy) -> None:
    review_truthfully(copy, 3 * UNLABELED)

    assert next_proposal(copy, "parts") is None
    assert refresh_due(copy, "parts") is None


def test_report_counts_right_shares(copy) -> None:
    shown = [row for row in list_proposals(copy, "parts") if not row["blind"]][:4]
    blind = [row for row in list_proposals(copy, "parts") if row["blind"]][:2]
    review_proposal(copy, "parts", shown[0]["id"], reviewer="ann", action="accept")
    review_proposal(copy, "parts", shown[1]["id"], reviewer="ann", action="accept")
    wrong = next(name for name in CLASSES if name != shown[2]["label"])
    review_proposal(copy, "parts", shown[2]["id"], reviewer="ann", action="correct", class_name=wrong)
    review_proposal(copy, "parts", shown[3]["id"], reviewer="ann", action="reject")
    with copy.session() as session:
        hidden = [session.get(Proposal, row["id"]).label for row in blind]
    review_proposal(copy, "parts", blind[0]["id"], reviewer="bob", action="correct", class_name=hidden[0])
    review_proposal(copy, "parts", blind[1]["id"], reviewer="bob", action="correct",
                    class_name=next(name for name in CLASSES if name != hidden[1]))

    report = proposal_report(copy, "parts")

    assert report["reviewed"] == 6
    assert report["open"] == 3 * UNLABELED - 6
    assert report["by_status"] == {"open": 3 * UNLABELED - 6, "accepted": 3, "corrected": 2, "rejected": 1,
                                   "superseded": 0, "replaced": 0}
    assert report["blind"] == {"checks": 2, "agree": 0.5}
    # Shown: 2 accepted of 4 (the rejected one counts as shown and not accepted).
    assert report["accepted_share"] == 0.5
    outcomes: dict[str, list[str]] = {}
    for row, outcome in zip(shown, ("accepted", "accepted", "corrected", "rejected")):
        outcomes.setdefault(row["label"], []).append(outcome)
    expected = {}
    for name, seen in outcomes.items():
        settled = [outcome for outcome in seen if outcome != "rejected"]
        expected[name] = round(settled.count("accepted") / len(settled), 4) if settled else None
    assert {name: entry["right"] for name, entry in report["by_class"].items()} == expected
    assert set(report["reviewers"]) == {"ann", "bob"}
    assert report["warnings"] == []


def test_report_warns_on_rubber_stamping(copy) -> None:
    rows = list_proposals(copy, "parts")
    shown = [row for row in rows if not row["blind"]][:5]
    blind = [row for row in rows if row["blind"]][:5]
    for row in shown:
        review_proposal(copy, "parts", row["id"], reviewer="ann", action="accept")
    with copy.session() as session:
        hidden = [session.get(Proposal, row["id"]).label for row in blind]
    for row, label in zip(blind, hidden):
        review_proposal(copy, "parts", row["id"], reviewer="ann", action="correct",
                        class_name=next(name for name in CLASSES if name != label))

    report = proposal_report(copy, "parts")

    assert report["accepted_share"] == 1.0
    assert report["blind"]["agree"] == 0.0
    assert len(report["warnings"]) == 1
    assert "without a close look" in report["warnings"][0]


def test_pace_leaves_out_pauses(copy) -> None:
    rows = [row for row in list_proposals(copy, "parts") if not row["blind"]][:4]
    for row in rows:
        review_proposal(copy, "parts", row["id"], reviewer="ann", action="reject")
    start = datetime(2026, 12, 5, 8, 0, tzinfo=timezone.utc)
    # 10 s, 20 s, then a 30-minute pause that does not count: 2 reviews in 30 s = 240 an hour.
    moments = [start, start + timedelta(seconds=10), start + timedelta(seconds=30), start + timedelta(minutes=31)]
    with copy.session() as session:
        for row, moment in zip(rows, moments):
            session.get(Proposal, row["id"]).reviewed_at = moment

    pace = proposal_report(copy, "parts")["reviewers"]["ann"]

    assert pace == {"reviews": 4, "per_hour": 240.0}


def test_unreviewed_proposals_never_reach_training(copy) -> None:
    from defectlab.training.run import train_project

    labeled = {row["id"] for row in list_images(copy, "parts") if row["label"] is not None}
    accepted = shown_proposal(copy)
    review_proposal(copy, "parts", accepted["id"], reviewer="ann", action="accept")

    result = train_project(copy, "parts", overrides={"epochs": 2})

    trained = sum(sum(per_split.values()) for per_split in result.counts.values())
    assert trained == len(labeled) + 1
    summary = make_proposals(copy, "parts", source="auto")
    assert summary["source"] == f"model {result.model_id}"
    assert summary["proposed"] == 3 * UNLABELED - 1


def test_features_need_two_labeled_classes(tmp_path: Path, workspace) -> None:
    write_parts(tmp_path / "source", 3, seed=5)
    shutil.rmtree(tmp_path / "source" / "scratch")
    shutil.rmtree(tmp_path / "source" / "spot")
    workspace.create_project("parts", "classification", ["scratch", "spot"])
    import_path(workspace, "parts", tmp_path / "source")
    unlabel(workspace, "5_0")

    with pytest.raises(InvalidInputError, match="need labeled images of two classes"):
        make_proposals(workspace, "parts", source="features")
    with pytest.raises(NotFoundError, match="has no model yet"):
        make_proposals(workspace, "parts", source="model")
    with pytest.raises(InvalidInputError, match="source 'guess' is invalid"):
        make_proposals(workspace, "parts", source="guess")
    assert list_proposals(workspace, "parts") == []


def test_anomaly_project_proposes_from_good_images(tmp_path: Path, workspace) -> None:
    write_parts(tmp_path / "source", 6, seed=6)
    shutil.rmtree(tmp_path / "source" / "scratch")
    workspace.create_project("parts", "anomaly", ["spot"])
    import_path(workspace, "parts", tmp_path / "source")
    spots = [row for row in list_images(workspace, "parts") if row["label"] == "spot"]
    good = [row for row in list_images(workspace, "parts") if row["label"] == "ok"]
    # Unlabel every image, then label four good ones again: two good images and the spots stay unlabeled.
    unlabel(workspace, "6_")
    for row in good[:4]:
        set_image_class(workspace, "parts", row["id"], "ok", labeler="ann")

    summary = make_proposals(workspace, "parts", source="features", blind_share=0.0)

    assert summary["proposed"] == len(spots) + 2
    proposed = {row["image_id"]: row["label"] for row in list_proposals(workspace, "parts")}
    assert set(proposed.values()) <= {"ok", "spot"}
    # A spot (a disc of radius 4 to 8 px) is the least familiar patch of its image, so one miss at most.
    assert sum(proposed[row["id"]] == "spot" for row in spots) >= len(spots) - 1


def test_cli_review_tells_when_refresh_due(copy) -> None:
    needed = max(MIN_NEW_LABELS, math.ceil(REFRESH_GROWTH * 3 * LABELED))
    review_truthfully(copy, needed - 1)
    proposal = next_proposal(copy, "parts")
    source = Path(__file__).resolve().parents[2] / "src"
    environment = {**os.environ, "PYTHONPATH": f"{source}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    result = subprocess.run(
        [sys.executable, "-m", "defectlab", "--workspace", str(copy.root), "proposals", "correct", "parts",
         str(proposal["id"]), "--class", Path(proposal["path"]).parent.name, "--reviewer", "ann"],
        capture_output=True, text=True, env=environment, timeout=300)

    assert result.returncode == 0, result.stderr
    assert (f"{3 * LABELED + needed} images are labeled now, against {3 * LABELED} when the open proposals "
            "were made") in result.stdout
    assert "defectlab propose parts --from features --blind-share 0.25" in result.stdout
