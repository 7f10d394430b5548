"""Agreement statistics on hand-computed cases, and per-labeler escapes and overkills."""

from __future__ import annotations

import numpy as np
import pytest

from defectlab.data.labels import list_images, set_image_class
from defectlab.errors import InvalidInputError
from defectlab.quality.agreement import LabelTable, collect_labels, measure_agreement


def table(rows: dict[str, list[str | None]]) -> LabelTable:
    count = len(next(iter(rows.values())))
    return LabelTable(list(rows), [(i + 1, f"{i}.png") for i in range(count)], rows)


def test_alpha_and_kappa_of_two_labelers() -> None:
    # Coincidences: units (ok,ok), (ok,dent), (dent,dent), (dent,dent) give o(ok,ok)=2, o(ok,dent)=o(dent,ok)=1,
    # o(dent,dent)=4; n=8, n_ok=3, n_dent=5. Observed disagreement 2/8, expected 2*3*5/(8*7)=30/56,
    # so alpha = 1 - (2/8)/(30/56) = 8/15. Kappa: agreement 3/4, chance 1/2*1/4 + 1/2*3/4 = 1/2, so 1/2.
    result = measure_agreement(table({"ana": ["ok", "ok", "dent", "dent"], "ben": ["ok", "dent", "dent", "dent"]}))
    assert result["alpha"] == pytest.approx(8 / 15, abs=1e-6)
    assert result["kappa_by_pair"] == [{"labelers": ["ana", "ben"], "images": 4, "kappa": pytest.approx(0.5)}]
    assert result["least_agreed"][0]["path"] == "1.png"
    assert result["least_agreed"][0]["agreement"] == 0.5


def test_missing_labels_are_left_out() -> None:
    result = measure_agreement(table({"ana": ["ok", "dent", None], "ben": ["ok", "dent", "dent"]}))
    assert result["alpha"] == pytest.approx(1.0)
    assert result["kappa_by_pair"][0]["images"] == 2
    assert result["images_with_two_or_more_labels"] == 2


def test_labeler_missing_30_percent_of_defects() -> None:
    rng = np.random.default_rng(0)
    truth = ["dent"] * 40 + ["ok"] * 60
    missed = set(rng.choice(40, size=12, replace=False).tolist())
    careless = ["ok" if index in missed else label for index, label in enumerate(truth)]
    result = measure_agreement(table({"ana": list(truth), "ben": careless, "cem": list(truth)}))
    by_name = {row["labeler"]: row for row in result["by_labeler"]}
    assert by_name["ben"]["escape_rate"] == pytest.approx(0.30)
    assert by_name["ben"]["overkill_rate"] == 0.0
    assert by_name["ana"]["escape_rate"] == 0.0
    assert by_name["cem"]["escape_rate"] == 0.0
    assert by_name["ben"]["confusion"]["dent -> ok"] == 12


def test_one_labeler_gets_clear_message() -> None:
    with pytest.raises(InvalidInputError, match="at least two labelers"):
        measure_agreement(table({"ana": ["ok", "dent"]}))


def test_no_shared_image_gets_clear_message() -> None:
    with pytest.raises(InvalidInputError, match="no image was labeled by two labelers"):
        measure_agreement(table({"ana": ["ok", None], "ben": [None, "dent"]}))


def test_labels_from_workspace_per_labeler(workspace, tmp_path) -> None:
    from defectlab.data.importer import import_path
    from defectlab.samples import write_class_folders

    workspace.create_project("parts", "classification")
    import_path(workspace, "parts", write_class_folders(tmp_path / "images", good=3, per_defect=1, size=32))
    ids = [row["id"] for row in list_images(workspace, "parts")]
    for image_id in ids:
        set_image_class(workspace, "parts", image_id, "ok", labeler="ana")
    set_image_class(workspace, "parts", ids[0], "scratch", labeler="ben")
    collected = collect_labels(workspace, "parts", labelers=["ana", "ben"])
    assert collected.labels["ana"] == ["ok"] * len(ids)
    assert collected.labels["ben"] == ["scratch"] + [None] * (len(ids) - 1)
    assert measure_agreement(collected)["least_agreed"][0]["image_id"] == ids[0]


def test_agreement_command(tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from defectlab.data.importer import import_path
    from defectlab.samples import write_class_folders
    from defectlab.workspace import Workspace

    opened = Workspace.open(tmp_path / "ws")
    opened.create_project("parts", "classification")
    import_path(opened, "parts", write_class_folders(tmp_path / "images", good=2, per_defect=1, size=32))
    first = list_images(opened, "parts")[0]["id"]
    set_image_class(opened, "parts", first, "ok", labeler="ana")
    opened.close()
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "defectlab", "--workspace", str(tmp_path / "ws"), *args],
                              capture_output=True, text=True, env=environment, timeout=120)

    lonely = run("agreement", "parts", "--labeler", "ana")
    assert lonely.returncode == 2
    assert "at least two labelers" in lonely.stderr
    both = run("agreement", "parts", "--labeler", "ana", "--labeler", "import", "--json")
    assert both.returncode == 0, both.stderr
    assert json.loads(both.stdout)["labelers"] == ["ana", "import"]
