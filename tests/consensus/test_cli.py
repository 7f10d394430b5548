"""Consensus labeling from the command line: create a task, label blind, measure, settle, read the defect book."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src"


def run(workspace: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": f"{SOURCE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run([sys.executable, "-m", "defectlab", "--workspace", str(workspace), *args],
                            capture_output=True, text=True, env=environment, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"defectlab {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def test_task_from_creation_to_defect_book(tmp_path: Path, write_images) -> None:
    ws = tmp_path / "ws"
    write_images(tmp_path / "lot", {"unsorted": 3})
    run(ws, "project", "create", "lot", "--task", "classification", "--class", "dent")
    run(ws, "import", "lot", str(tmp_path / "lot" / "unsorted"), "--format", "folders")
    created = run(ws, "task", "create", "lot", "r1", "--labeler", "ana", "--labeler", "ben").stdout
    assert "3 images for ana, ben" in created

    seen = []
    for labeler, classes in (("ana", ["dent", "ok", "dent"]), ("ben", ["dent", "dent", "ok"])):
        for class_name in classes:
            image = json.loads(run(ws, "task", "next", "lot", "r1", "--labeler", labeler, "--json").stdout)
            seen.append(image["image_id"])
            run(ws, "task", "label", "lot", "r1", str(image["image_id"]), "--labeler", labeler, "--class", class_name)
    assert seen[:3] == seen[3:]
    done = run(ws, "task", "next", "lot", "r1", "--labeler", "ana").stdout.strip()
    assert done == "ana has labeled every image of task r1"

    result = json.loads(run(ws, "task", "agreement", "lot", "r1", "--json").stdout)
    # Units (dent,dent), (ok,dent), (dent,ok): o(dent,dent)=2, o(ok,dent)=o(dent,ok)=2, n=6, n_dent=4, n_ok=2;
    # observed disagreement 4/6, expected 2*4*2/(6*5) = 16/30, alpha = 1 - (4/6)/(16/30) = -0.25.
    assert abs(result["classes"]["alpha"] - (-0.25)) < 1e-6

    assert "1 images settled; 2 left" in run(ws, "task", "settle-agreed", "lot", "r1", "--reviewer", "lead").stdout
    bad = run(ws, "task", "settle", "lot", "r1", str(seen[1]), "--ambiguous", "--class", "rust", check=False)
    assert bad.returncode == 2
    assert "class 'rust' is not in the project" in bad.stderr
    run(ws, "task", "settle", "lot", "r1", str(seen[1]), "--ambiguous", "--note", "faint mark", "--reviewer", "lead")
    run(ws, "task", "settle", "lot", "r1", str(seen[2]), "--take", "ana", "--reviewer", "lead")

    book = run(ws, "book", "show", "lot", "dent").stdout
    assert "borderline: image" in book
    assert "faint mark" in book
    run(ws, "book", "define", "lot", "dent", "--definition", "A dent", "--min-area", "9", "--author", "lead")
    assert "minimum area 9 px²" in run(ws, "book", "show", "lot", "dent").stdout
    history = run(ws, "book", "show", "lot", "dent", "--history").stdout.splitlines()
    assert [line.split()[1] for line in history] == ["1", "2"]
    labels = [json.loads(line)["label"] for line in run(ws, "images", "lot", "--json").stdout.splitlines()]
    assert sorted(label or "-" for label in labels) == ["-", "dent", "dent"]
