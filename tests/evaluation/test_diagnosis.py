"""Diagnosis rules: each one triggered by data built for it, and silent on data that must not trigger it."""

from __future__ import annotations

import numpy as np
import pytest

from defectlab.errors import InvalidInputError
from defectlab.evaluation.diagnosis import (
    diagnose,
    find_open_suspicious_labels,
    find_overfitting,
    find_thin_classes,
    find_unpredicted_classes,
)


def test_thin_class_counts_all_splits() -> None:
    counts = {"train": {"ok": 30, "dent": 9}, "dev": {"ok": 6, "dent": 2}, "test": {"ok": 6, "dent": 1}}

    findings = find_thin_classes(counts, task="classification")

    assert [finding.details for finding in findings] == [{"class": "dent", "images": 12, "collect": 8}]
    assert "Class dent has only 12 labeled images" in findings[0].message
    assert "about 8 more images of dent" in findings[0].message


def test_thin_class_silent_at_twenty() -> None:
    counts = {"train": {"ok": 14, "dent": 14}, "dev": {"ok": 3, "dent": 3}, "test": {"ok": 3, "dent": 3}}

    assert find_thin_classes(counts, task="classification") == []


def test_thin_class_anomaly_counts_good_only() -> None:
    counts = {"train": {"ok": 11}, "test": {"ok": 2, "crack": 1}}

    findings = find_thin_classes(counts, task="anomaly")

    assert [finding.details["class"] for finding in findings] == ["ok"]
    assert findings[0].details["collect"] == 7
    assert "about 7 more good images" in findings[0].message


def test_overfitting_found() -> None:
    train = [0.9, 0.6, 0.4, 0.3, 0.2, 0.15, 0.1, 0.08]
    dev = [0.95, 0.7, 0.5, 0.45, 0.5, 0.6, 0.7, 0.8]

    (finding,) = find_overfitting({"train": train, "dev": dev})

    # The dev minimum 0.45 is at epoch 4; the last three dev losses average (0.6 + 0.7 + 0.8) / 3 = 0.7 and the
    # last three train losses (0.15 + 0.1 + 0.08) / 3 = 0.11.
    assert finding.details["best_epoch"] == 4
    assert finding.details["late_dev_loss"] == pytest.approx(0.7)
    assert finding.details["late_train_loss"] == pytest.approx(0.11)
    assert "lowest at epoch 4 (0.450) and rose to 0.700" in finding.message
    assert "train again with 4 epochs" in finding.message


@pytest.mark.parametrize(("train", "dev"), [
    ([0.9, 0.6, 0.4, 0.3, 0.2, 0.15], [0.95, 0.7, 0.5, 0.4, 0.35, 0.3]),  # both fall
    ([0.9, 0.6, 0.4, 0.3, 0.2, 0.15], [0.95, 0.7, 0.5, 0.45, 0.6, 0.7]),  # rises for two epochs only
    ([0.9, 0.6, 0.4, 0.3, 0.2, 0.15, 0.1], [0.3, 0.2, 0.1, 0.005, 0.01, 0.012, 0.015]),  # rise below 0.02
    ([0.9, 0.6, 0.4, 0.3, 0.5, 0.6, 0.7], [0.95, 0.7, 0.5, 0.4, 0.6, 0.7, 0.8]),  # train rises too
    ([0.9, 0.6, 0.4, 0.3], [0.95, None, 0.5, 0.6]),  # a loss that was not finite
])
def test_overfitting_not_found(train: list[float], dev: list[float | None]) -> None:
    assert find_overfitting({"train": train, "dev": dev}) == []


def test_overfitting_needs_dev_curve() -> None:
    assert find_overfitting({"train": [0.9, 0.5, 0.3, 0.2, 0.1]}) == []


def test_unpredicted_class_found() -> None:
    names = ["ok", "dent", "scratch"]
    matrix = [[5, 1, 0],
              [0, 4, 0],
              [1, 2, 0]]

    (finding,) = find_unpredicted_classes(names, matrix, split="dev")

    assert finding.details == {"class": "scratch", "split": "dev", "labeled": 3,
                               "predicted_instead": {"ok": 1, "dent": 2}}
    assert finding.message.startswith("The model never predicted scratch on the 13 dev images, though 3 of them")
    assert "1 as ok, 2 as dent" in finding.message


def test_unpredicted_class_needs_labeled_images() -> None:
    names = ["ok", "dent", "scratch"]
    matrix = [[5, 1, 0],
              [0, 4, 0],
              [0, 0, 0]]

    assert find_unpredicted_classes(names, matrix, split="test") == []


def test_unpredicted_class_rejects_bad_matrix() -> None:
    with pytest.raises(InvalidInputError, match=r"shape \(2, 3\), but 3 classes"):
        find_unpredicted_classes(["ok", "dent", "scratch"], np.zeros((2, 3)), split="dev")


FLAGGED = [{"image_id": 1, "path": "dent/1.png", "label": "dent", "suggested": "ok"},
           {"image_id": 2, "path": "ok/2.png", "label": "ok", "suggested": "dent"},
           {"image_id": 3, "path": "ok/3.png", "label": "ok", "suggested": "dent"}]


def test_suspicious_labels_still_open() -> None:
    current = {1: "dent", 2: "dent", 3: "ok"}

    (finding,) = find_open_suspicious_labels(FLAGGED, current, checked_at="2026-12-05T09:00:12+00:00")

    # Image 2 was relabeled after the check, so it is no longer open.
    assert finding.details == {"image_ids": [1, 3]}
    assert "The data check of 2026-12-05 09:00 UTC flagged 2 labels" in finding.message
    assert "dent/1.png (labeled dent, looks like ok); ok/3.png (labeled ok, looks like dent)" in finding.message


def test_suspicious_region_names_problem() -> None:
    flagged = [{"image_id": 4, "path": "boxes/4.png", "label": "ok", "problem": "missing_box", "given": "no box",
                "suggested": "dent box"}]

    (finding,) = find_open_suspicious_labels(flagged, {4: "ok"})

    assert "boxes/4.png (missing box: no box given, dent box suggested)" in finding.message


def test_suspicious_labels_all_resolved() -> None:
    current = {1: "ok", 2: "dent"}  # image 3 has left the project

    assert find_open_suspicious_labels(FLAGGED, current) == []


def test_diagnose_runs_given_rules() -> None:
    counts = {"train": {"ok": 3, "dent": 30}}
    matrix = [[2, 0], [0, 3]]

    findings = diagnose(task="classification", counts=counts, loss_curves={"train": [0.5], "dev": [0.6]},
                        predictions=(["ok", "dent"], matrix, "dev"),
                        suspicious=(FLAGGED, {1: "dent"}, None))

    assert [finding.kind for finding in findings] == ["thin_class", "suspicious_labels"]
