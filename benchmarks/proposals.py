"""Benchmark proposals on magnetic tile: how often they are right, and how much reviewing time they save.

Usage (from the repository root)::

    PYTHONPATH=src .venv/bin/python benchmarks/proposals.py [--only right-share|reviewing]

The magnetic-tile images are imported into a fresh workspace with their class
labels, which serve as the truth. Then, through the product's own functions:

1. **Right share.** For 5, 20 and 50 labeled images per class (a random choice,
   seed 0; a class with fewer images keeps them all), the other images are made
   unlabeled and ``make_proposals`` (source ``features``) proposes a class for
   each. The share of proposals equal to the truth is measured overall and per class.
2. **Reviewing time.** A simulated reviewer labels the whole set. Without
   proposals every image costs 10 s. With proposals, 5 images per class are
   first labeled by hand (10 s each) and proposals are made from them. The
   reviewer then settles the open proposals one at a time, least confident
   first, through ``review_proposal``: a right proposal is accepted (1 s), a
   wrong one corrected (10 s), and a blind check is labeled by hand (10 s).
   Whenever ``refresh_due`` returns settings after a review, proposals are
   made again from the labels so far, as the review page's server does.

Proposal timings include feature extraction in the first round only: later
rounds reuse the workspace's feature cache, as the product does. The figures go
to ``benchmarks/results.json`` under "proposals".

NOTE: the simulated reviewer waits for each new run of proposals. On the review
page the reviewer goes on with the current proposals while the job runs, so a
few reviews per run use older proposals than here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from sqlalchemy import select

from defectlab.data.importer import import_path
from defectlab.data.snapshot import image_label
from defectlab.proposals import make_proposals, next_proposal, refresh_due, review_proposal
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, Image, Proposal

REPOSITORY = Path(__file__).resolve().parents[1]
SOURCE = REPOSITORY.parent / "shared" / "datasets" / "magnetic-tile"
RESULTS = REPOSITORY / "benchmarks" / "results.json"
PROJECT = "tiles"
SEED = 0
LABELED_PER_CLASS = (5, 20, 50)
ACCEPT_SECONDS = 1.0
CORRECT_SECONDS = 10.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["right-share", "reviewing"],
                        help="measure one part and keep the other's figures from results.json")
    only = parser.parse_args(argv).only
    if not SOURCE.is_dir():
        sys.exit(f"{SOURCE} is missing; this benchmark needs the magnetic-tile dataset")
    torch.set_num_threads(2)
    figures = dict(_read_results().get("proposals", {}))
    folder = Path(tempfile.mkdtemp(prefix="defectlab-proposals-"))
    try:
        workspace = Workspace.open(folder / "workspace")
        workspace.create_project(PROJECT, "classification", [])
        import_path(workspace, PROJECT, SOURCE)
        truth = _truth(workspace)
        if only != "reviewing":
            figures["right_share_by_labels_per_class"] = {
                str(count): _right_share(workspace, truth, count) for count in LABELED_PER_CLASS}
        if only != "right-share":
            figures["reviewing"] = _simulate_review(workspace, truth)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    command = " ".join(["PYTHONPATH=src .venv/bin/python benchmarks/proposals.py", *(argv or sys.argv[1:])])
    previous = figures.pop("command", None)
    commands = figures.setdefault("commands", {"right-share": previous, "reviewing": previous})
    commands.update({part: command for part in ("right-share", "reviewing") if only in (None, part)})
    figures["images"] = len(truth)
    results = _read_results()  # read again: other benchmarks may have written their keys meanwhile
    results["proposals"] = figures
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


def _read_results() -> dict[str, object]:
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}


def _truth(workspace: Workspace) -> dict[int, str]:
    with workspace.session() as session:
        images = session.scalars(select(Image)).all()
        return {image.id: image_label(image.annotations) for image in images}


def _keep_labels(workspace: Workspace, truth: dict[int, str], count: int) -> set[int]:
    """Leave ``count`` labeled images per class (chosen with ``SEED``) and unlabel the rest; return the kept ids."""
    rng = np.random.default_rng(SEED)
    kept = set()
    for name in sorted(set(truth.values())):
        ids = sorted(image_id for image_id, label in truth.items() if label == name)
        kept.update(int(image_id) for image_id in rng.permutation(ids)[:count])
    with workspace.session() as session:
        for image in session.scalars(select(Image)).all():
            if image.id not in kept:
                image.annotations = []
    return kept


def _restore_labels(workspace: Workspace, truth: dict[int, str]) -> None:
    """Give every image its true class again and drop all proposals."""
    with workspace.session() as session:
        classes = {c.name: c for c in session.scalars(select(Image)).first().project.classes}
        session.query(Proposal).delete()
        for image in session.scalars(select(Image)).all():
            image.annotations = [Annotation(defect_class=classes[truth[image.id]], labeler="import", kind="class")]


def _right_share(workspace: Workspace, truth: dict[int, str], count: int) -> dict[str, object]:
    kept = _keep_labels(workspace, truth, count)
    started = time.perf_counter()
    summary = make_proposals(workspace, PROJECT, source="features", blind_share=0.0, seed=SEED)
    seconds = time.perf_counter() - started
    with workspace.session() as session:
        proposals = session.scalars(select(Proposal).where(Proposal.status == "open")).all()
        pairs = [(truth[p.image_id], p.label) for p in proposals]
    _restore_labels(workspace, truth)
    per_class = Counter(true for true, _ in pairs)
    right_per_class = Counter(true for true, proposed in pairs if true == proposed)
    share = sum(right_per_class.values()) / len(pairs)
    print(f"{count} labeled per class: {share:.3f} of {len(pairs)} proposals right in {seconds:.1f} s", flush=True)
    return {"labeled": len(kept), "proposals": len(pairs), "right": round(share, 4), "seconds": round(seconds, 1),
            "right_by_class": {name: f"{right_per_class[name]}/{per_class[name]}" for name in sorted(per_class)},
            "source": summary["source"]}


def _simulate_review(workspace: Workspace, truth: dict[int, str]) -> dict[str, object]:
    kept = _keep_labels(workspace, truth, LABELED_PER_CLASS[0])
    seconds = CORRECT_SECONDS * len(kept)
    counts = Counter({"by hand": len(kept)})
    rounds: list[dict[str, int]] = []
    started = time.perf_counter()
    make_proposals(workspace, PROJECT, source="features", seed=SEED)
    rounds.append(Counter())
    while (proposal := next_proposal(workspace, PROJECT)) is not None:
        true = truth[proposal["image_id"]]
        if proposal["blind"]:
            action, cost, outcome = "correct", CORRECT_SECONDS, "blind check"
        elif proposal["label"] == true:
            action, cost, outcome = "accept", ACCEPT_SECONDS, "accepted"
        else:
            action, cost, outcome = "correct", CORRECT_SECONDS, "corrected"
        review_proposal(workspace, PROJECT, proposal["id"], reviewer="simulated", action=action,
                        class_name=None if action == "accept" else true)
        seconds += cost
        counts[outcome] += 1
        rounds[-1][outcome] += 1
        due = refresh_due(workspace, PROJECT)
        if due is not None:
            make_proposals(workspace, PROJECT, source=due["source"], blind_share=due["blind_share"],
                           seed=SEED + len(rounds))
            print(f"round {len(rounds)}: {dict(rounds[-1])}; proposing again from {due['labeled_images']} labels",
                  flush=True)
            rounds.append(Counter())
    without = CORRECT_SECONDS * len(truth)
    print(f"reviewing: {seconds:.0f} s with proposals against {without:.0f} s without ({seconds / without:.3f})",
          flush=True)
    return {"seconds_with_proposals": seconds, "seconds_without": without, "ratio": round(seconds / without, 4),
            "outcomes": dict(counts), "rounds": [dict(outcomes) for outcomes in rounds],
            "wall_seconds": round(time.perf_counter() - started, 1)}


if __name__ == "__main__":
    main()
