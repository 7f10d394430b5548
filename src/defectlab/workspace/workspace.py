"""The workspace: one folder with the metadata database and the blob store.

The folder is ``--workspace DIR`` when given, else ``DEFECTLAB_HOME``, else
the user data folder from platformdirs. Metadata lives in SQLite (WAL
journal) unless ``DEFECTLAB_DATABASE_URL`` names another database, such as
PostgreSQL for a team.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from defectlab.errors import ConflictError, InvalidInputError, NotFoundError
from defectlab.formats.records import OK_CLASS
from defectlab.workspace.schema import TASKS, DefectClass, Model, Project
from defectlab.workspace.store import BlobStore

__all__ = ["Workspace", "resolve_root"]

logger = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).parent / "migrations"
# Letters, digits, spaces, '.', '_' and '-'; no space at either end, because
# a name typed with a stray space would look the same as another project.
_PROJECT_NAME = re.compile(r"^\w(?:[\w .-]{0,198}[\w.-])?$", re.UNICODE)

# Project names listed in a "does not exist" error; the rest are counted.
_LISTED_PROJECTS = 10


def resolve_root(root: Path | str | None = None) -> Path:
    """Return the workspace folder from the argument, ``DEFECTLAB_HOME`` or the user data folder."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("DEFECTLAB_HOME"):
        return Path(os.environ["DEFECTLAB_HOME"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("defectlab", appauthor=False))


class Workspace:
    """Projects, images, labels and models stored under one folder."""

    def __init__(self, root: Path, engine: Engine) -> None:
        self.root = root
        self.engine = engine
        self.blobs = BlobStore(root / "blobs")
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, root: Path | str | None = None) -> Workspace:
        """Open the workspace at ``root`` (see ``resolve_root``), creating and migrating it as needed."""
        folder = resolve_root(root)
        folder.mkdir(parents=True, exist_ok=True)
        url = os.environ.get("DEFECTLAB_DATABASE_URL") or f"sqlite:///{folder / 'defectlab.db'}"
        engine = create_engine(url)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _configure_sqlite)
        _migrate(engine)
        logger.info("opened workspace %s", folder)
        return cls(folder, engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session whose changes are committed together, or rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def create_project(self, name: str, task: str, classes: list[str] | None = None) -> Project:
        """Create a project with its task type, the ``ok`` class and ``classes``."""
        _check_project_name(name)
        names = _checked_class_names(classes or [])
        if task not in TASKS:
            raise InvalidInputError(f"task {task!r} is not known; use one of: {', '.join(TASKS)}")
        with self.session() as session:
            if session.scalar(select(Project).where(Project.name == name)) is not None:
                raise ConflictError(f"project {name!r} already exists; choose another name or delete it first")
            project = Project(name=name, task=task)
            for position, class_name in enumerate(dict.fromkeys([OK_CLASS, *names])):
                project.classes.append(DefectClass(name=class_name, position=position))
            session.add(project)
        logger.info("created project %s (%s)", name, task)
        return project

    def add_classes(self, project_name: str, names: list[str]) -> list[str]:
        """Add defect classes to a project (those it has already are left alone); return the ones added.

        Raises:
            InvalidInputError: A name is empty or longer than 200 characters.
        """
        checked = _checked_class_names(names)
        with self.session() as session:
            project = self.get_project(session, project_name)
            known = {c.name for c in project.classes}
            added = []
            for name in checked:
                if name not in known:
                    project.classes.append(DefectClass(name=name, position=len(project.classes)))
                    known.add(name)
                    added.append(name)
        logger.info("added classes %s to %s", added, project_name)
        return added

    def get_project(self, session: Session, name: str) -> Project:
        project = session.scalar(select(Project).where(Project.name == name))
        if project is None:
            names = list(session.scalars(select(Project.name).order_by(Project.name)))
            raise NotFoundError(
                f"project {name!r} does not exist (projects: {_list_names(names)}); create it with "
                f"'defectlab project create {name} --task TASK'"
            )
        return project

    def require_project(self, name: str) -> None:
        """Check that a project exists, before asking a person to confirm an action on it.

        Raises:
            NotFoundError: No project has this name.
        """
        with self.session() as session:
            self.get_project(session, name)

    def list_projects(self) -> list[Project]:
        with self.session() as session:
            return list(session.scalars(select(Project).order_by(Project.name)))

    def delete_project(self, name: str) -> None:
        """Delete a project with its images, labels and models in one transaction."""
        with self.session() as session:
            project = self.get_project(session, name)
            for model in session.scalars(select(Model).where(Model.project_id == project.id)):
                session.delete(model)
            session.delete(project)
        logger.info("deleted project %s", name)

    def get_model(self, session: Session, model_id: int) -> Model:
        model = session.get(Model, model_id)
        if model is None:
            raise NotFoundError(f"model {model_id} does not exist; list models with 'defectlab models PROJECT'")
        return model


def _checked_class_names(names: list[str]) -> list[str]:
    checked = [name.strip() for name in names]
    for name in checked:
        if not name or len(name) > 200:
            raise InvalidInputError(f"class name {name!r} is not valid; give 1 to 200 characters")
    return checked


def _check_project_name(name: str) -> None:
    if name != name.strip():
        raise InvalidInputError(
            f"project name {name!r} starts or ends with a space; use {name.strip()!r} without the spaces"
        )
    if not _PROJECT_NAME.match(name):
        raise InvalidInputError(
            f"project name {name!r} is not valid; use 1-200 letters, digits, spaces, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def _list_names(names: list[str]) -> str:
    if not names:
        return "none yet"
    listed = ", ".join(names[:_LISTED_PROJECTS])
    if len(names) <= _LISTED_PROJECTS:
        return listed
    return f"{listed} and {len(names) - _LISTED_PROJECTS} more; see 'defectlab project list'"


def _configure_sqlite(connection, _record) -> None:  # noqa: ANN001 - DBAPI connection
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _migrate(engine: Engine) -> None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
