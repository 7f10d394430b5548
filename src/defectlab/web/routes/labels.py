"""Routes of the labeling page: an image's whole label, read and saved with its version, and its neighbours."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from defectlab.data.annotations import read_annotations, save_annotations
from defectlab.data.browse import find_neighbours
from defectlab.web.access import Labeler, acting
from defectlab.web.bodies import ImageAnnotations
from defectlab.web.routes import WorkspaceParameter, error_responses
from defectlab.web.routes.browse import FilterParameters, SortParameter

__all__ = ["router"]

router = APIRouter(prefix="/projects/{project}/images/{image_id}", tags=["labeling"],
                   responses=error_responses(400, 401, 403, 404))


@router.get("/annotations", summary="An image's label for editing, with its version")
def read_image_annotations(project: str, image_id: int, workspace: WorkspaceParameter) -> dict[str, Any]:
    """Return `image_id`, `path`, `width`, `height`, `version`, `state` (`not_labeled`, `no_defect` or
    `defective`), `label`, `class` and `regions` (each with `class`, `labeler` and a `box`, a `polygon` or a
    `mask` crop `{x, y, width, height, png}`)."""
    return read_annotations(workspace, project, image_id)


@router.put("/annotations", summary="Replace an image's label", responses=error_responses(409))
def put_image_annotations(project: str, image_id: int, body: ImageAnnotations,
                          workspace: WorkspaceParameter, account: Labeler) -> dict[str, Any]:
    """Replace every annotation of the image with `class` and `regions`, stamped with the account's name. A `version`
    older than the image's current one means someone saved since: the save is rejected with 409 and nothing
    changes. Return the label as GET returns it, at the new version."""
    return save_annotations(workspace, project, image_id, labeler=acting(account, body.labeler, "labeler"),
                            version=body.version,
                            class_name=body.class_name, regions=body.region_dicts())


@router.get("/neighbours", summary="The images before and after this one in the data browser's order")
def read_neighbours(project: str, image_id: int, workspace: WorkspaceParameter, where: FilterParameters,
                    sort: SortParameter = "path") -> dict[str, Any]:
    """Return `previous` and `next` image ids (null at either end), `position` from 1 and `total`, under the
    same filters and sort as GET /api/projects/{project}/browse."""
    return find_neighbours(workspace, project, image_id, where, sort=sort)
