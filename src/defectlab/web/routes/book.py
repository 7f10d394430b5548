"""Routes for the defect book: each class's definition, decision rule and example images, versioned.

A class name may contain '/', which reaches the router decoded even when sent
as %2F, so the class is a ``path`` parameter. The routes with a suffix after
the class come before the bare entry routes, which would otherwise take the
suffix as part of the class name.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from defectlab.book import add_example, entry_history, read_book, read_entry, remove_example, update_entry
from defectlab.web.access import Reviewer, acting
from defectlab.web.bodies import BookChange, BookExample
from defectlab.web.routes import WorkspaceParameter, error_responses

__all__ = ["router"]

router = APIRouter(prefix="/projects/{project}/book", tags=["defect book"],
                   responses=error_responses(400, 401, 403, 404))


@router.get("", summary="The newest entry of every class of the project")
def read_project_book(project: str, workspace: WorkspaceParameter) -> list[dict[str, Any]]:
    return read_book(workspace, project)


@router.get("/{class_name:path}/history", summary="Every version of a class's entry, oldest first")
def read_entry_history(project: str, class_name: str, workspace: WorkspaceParameter) -> list[dict[str, Any]]:
    return entry_history(workspace, project, class_name)


@router.post("/{class_name:path}/examples", status_code=201, summary="Link an image to a class's entry")
def add_book_example(project: str, class_name: str, body: BookExample,
                     workspace: WorkspaceParameter, account: Reviewer) -> dict[str, Any]:
    """Link the image as an example, counter-example or borderline case, replacing its old link; return the
    new version."""
    return add_example(workspace, project, class_name, body.image_id, role=body.role,
                       author=acting(account, body.author, "author"),
                       note=body.note)


@router.delete("/{class_name:path}/examples/{image_id}", summary="Unlink an image from a class's entry")
def remove_book_example(
    project: str,
    class_name: str,
    image_id: int,
    workspace: WorkspaceParameter,
    account: Reviewer,
    author: Annotated[str | None, Query(max_length=100, description="Leave out: the signed-in account is "
                                                                  "recorded; when sent, it must be its name.")] = None,
) -> dict[str, Any]:
    """Return the new version."""
    return remove_example(workspace, project, class_name, image_id, author=acting(account, author, "author"))


@router.get("/{class_name:path}", summary="One class's entry, the newest or an older version")
def read_book_entry(
    project: str,
    class_name: str,
    workspace: WorkspaceParameter,
    version: Annotated[int | None, Query(description="An older version (default: the newest).")] = None,
) -> dict[str, Any]:
    """Return `class`, `version` (0 before the first change), `author`, `created_at`, `change`, `definition`,
    `rule` and `examples`."""
    return read_entry(workspace, project, class_name, version=version)


@router.patch("/{class_name:path}", summary="Change a class's definition or decision rule",
              responses=error_responses(409))
def change_book_entry(project: str, class_name: str, body: BookChange,
                      workspace: WorkspaceParameter, account: Reviewer) -> dict[str, Any]:
    """Change the fields sent and keep the others. With `based_on`, a newer current version rejects the change
    with 409: read the entry again and repeat the change. Return the new version."""
    return update_entry(workspace, project, class_name, author=acting(account, body.author, "author"),
                        definition=body.definition,
                        rule=body.rule_dict(), based_on=body.based_on)
