"""Workspace: projects, names, migrations and the blob store."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from defectlab.errors import ConflictError, InvalidInputError, NotFoundError
from defectlab.workspace import Workspace, resolve_root
from defectlab.workspace.store import BlobStore, sha256_of


def test_project_created_with_ok_class(workspace: Workspace) -> None:
    workspace.create_project("tiles", "classification")
    with workspace.session() as session:
        project = workspace.get_project(session, "tiles")
        assert project.task == "classification"
        assert [c.name for c in project.classes] == ["ok"]


def test_duplicate_project_conflicts(workspace: Workspace) -> None:
    workspace.create_project("tiles", "anomaly")
    with pytest.raises(ConflictError, match="already exists"):
        workspace.create_project("tiles", "classification")


@pytest.mark.parametrize("name", ["", "../escape", "a/b", " leading"])
def test_invalid_project_name_rejected(workspace: Workspace, name: str) -> None:
    with pytest.raises(InvalidInputError, match="project name"):
        workspace.create_project(name, "classification")


def test_unknown_task_lists_tasks(workspace: Workspace) -> None:
    with pytest.raises(InvalidInputError, match="classification, anomaly, segmentation, detection"):
        workspace.create_project("x", "regression")


def test_missing_project_names_known_ones(workspace: Workspace) -> None:
    workspace.create_project("Prüfung Linie 2", "detection")
    with workspace.session() as session, pytest.raises(NotFoundError, match="Prüfung Linie 2"):
        workspace.get_project(session, "nope")


def test_reopen_keeps_projects(tmp_path: Path) -> None:
    first = Workspace.open(tmp_path)
    first.create_project("a", "segmentation")
    first.close()
    second = Workspace.open(tmp_path)
    assert [p.name for p in second.list_projects()] == ["a"]
    with second.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == newest_migration()


def newest_migration() -> str:
    """Return the highest revision id among the migration files, read from their names."""
    from defectlab.workspace.workspace import _MIGRATIONS

    return max(path.name.split("_")[0] for path in (Path(_MIGRATIONS) / "versions").glob("[0-9]*.py"))


def test_first_version_workspace_upgraded(tmp_path: Path) -> None:
    """A workspace made before captured predictions existed gains the inferences table on open."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, inspect

    from defectlab.workspace.workspace import _MIGRATIONS

    engine = create_engine(f"sqlite:///{tmp_path / 'defectlab.db'}")
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(text("INSERT INTO projects (name, task, created_at) VALUES ('old', 'anomaly', '2026-01-01')"))
    assert "inferences" not in inspect(engine).get_table_names()
    engine.dispose()
    reopened = Workspace.open(tmp_path)
    assert "inferences" in inspect(reopened.engine).get_table_names()
    assert [project.name for project in reopened.list_projects()] == ["old"]
    reopened.close()


def test_delete_project(workspace: Workspace) -> None:
    workspace.create_project("a", "classification")
    workspace.delete_project("a")
    assert workspace.list_projects() == []


def test_root_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DEFECTLAB_HOME", str(tmp_path / "home"))
    assert resolve_root(None) == tmp_path / "home"
    assert resolve_root(tmp_path / "given") == tmp_path / "given"


def test_blob_store_deduplicates_and_collects(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    first = store.put(b"abc")
    again = store.put(b"abc")
    other = store.put(b"xyz")
    assert first == again == sha256_of(b"abc")
    assert store.get(first) == b"abc"
    (store.path_of(first).parent / ".tmp-leftover").write_bytes(b"half")
    assert store.collect_garbage([first]) == 2
    assert store.get(first) == b"abc"
    with pytest.raises(NotFoundError, match=other):
        store.get(other)


@pytest.mark.parametrize("name", ["trailing ", " both ", "tab\t"])
def test_project_name_with_outer_space_rejected(workspace: Workspace, name: str) -> None:
    with pytest.raises(InvalidInputError, match="starts or ends with a space"):
        workspace.create_project(name, "classification")


def test_project_name_with_inner_space_accepted(workspace: Workspace) -> None:
    workspace.create_project("line 3 tiles", "classification")

    assert [project.name for project in workspace.list_projects()] == ["line 3 tiles"]


def test_missing_project_lists_at_most_ten(workspace: Workspace) -> None:
    for index in range(12):
        workspace.create_project(f"p{index:02d}", "classification")

    with pytest.raises(NotFoundError) as raised, workspace.session() as session:
        workspace.get_project(session, "nope")

    message = str(raised.value)
    assert "p09" in message
    assert "p10" not in message
    assert "and 2 more; see 'defectlab project list'" in message


def test_require_project_raises_for_unknown(workspace: Workspace) -> None:
    workspace.create_project("tiles", "classification")

    workspace.require_project("tiles")
    with pytest.raises(NotFoundError, match="'nope' does not exist"):
        workspace.require_project("nope")
