"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture
def workspace(tmp_path: Path):
    from defectlab.workspace import Workspace

    opened = Workspace.open(tmp_path / "workspace")
    yield opened
    opened.close()
