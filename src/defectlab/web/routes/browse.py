"""Routes of the data browser: a page of images with filters and sorting, metadata keys, and bulk changes.

The filters are query parameters shared with the labeling routes, so the
labeling page's next and previous follow the order the browser showed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from defectlab.data.browse import SORT_KEYS, ImageFilter, browse_images, change_images, list_labelers, metadata_keys
from defectlab.web.access import Reviewer, acting
from defectlab.web.bodies import BulkChange
from defectlab.web.routes import WorkspaceParameter, error_responses

__all__ = ["FilterParameters", "SortParameter", "router"]

router = APIRouter(prefix="/projects/{project}", tags=["data browser"],
                   responses=error_responses(400, 401, 403, 404))


def image_filter(
    label: Annotated[str | None, Query(description="Only images whose label is this class (`ok`: no defect).")] = None,
    split: Annotated[str | None, Query(description="`train`, `dev`, `test`, or `none` for images without one.")]
    = None,
    labeled: Annotated[bool | None, Query(description="Only labeled (true) or not labeled (false) images.")] = None,
    labeler: Annotated[str | None, Query(description="Only images with an annotation by this labeler.")] = None,
    key: Annotated[str | None, Query(description="Only images whose metadata has this key.")] = None,
    value: Annotated[str | None, Query(description="With `key`: only images whose metadata value, as text, is this.")]
    = None,
    excluded: Annotated[bool | None, Query(description="Only excluded (true) or included (false) images.")] = None,
) -> ImageFilter:
    return ImageFilter(label=label or None, split=split or None, labeled=labeled, labeler=labeler or None,
                       metadata_key=key or None,
                       metadata_value=value if key else None, excluded=excluded)


FilterParameters = Annotated[ImageFilter, Depends(image_filter)]
SortParameter = Annotated[str, Query(description="The order; a leading '-' reverses it.",
                                     json_schema_extra={"enum": list(SORT_KEYS)})]


@router.get("/browse", summary="One page of the project's images, filtered and sorted")
def browse_project_images(
    project: str,
    workspace: WorkspaceParameter,
    where: FilterParameters,
    sort: SortParameter = "path",
    page: Annotated[int, Query(description="The page, from 1.")] = 1,
    page_size: Annotated[int, Query(description="Images per page, 1 to 500.")] = 60,
) -> dict[str, Any]:
    """Return `total` (images that pass the filters), `page`, `page_size`, `pages` and `images`: each with `id`,
    `path`, `width`, `height`, `split`, `label`, `excluded`, `version` and `metadata`."""
    return browse_images(workspace, project, where, sort=sort, page=page, page_size=page_size)


@router.get("/metadata", summary="The project's metadata keys with their values")
def read_metadata_keys(project: str, workspace: WorkspaceParameter) -> dict[str, list[str]]:
    """Return each key with up to 50 of its distinct values, as text, for the browser's metadata filter."""
    return metadata_keys(workspace, project)


@router.get("/labelers", summary="Everyone who labeled the project's images")
def read_labelers(project: str, workspace: WorkspaceParameter) -> list[str]:
    """Return the names sorted; `import` is the labeler of labels that came with an import."""
    return list_labelers(workspace, project)


@router.post("/images/bulk", summary="Change many images at once")
def change_selected_images(project: str, body: BulkChange, workspace: WorkspaceParameter,
                           account: Reviewer) -> dict[str, Any]:
    """Set the split or the image-level class of the selected images, or exclude them from training (or include
    them again), in one transaction. Return `action` and how many images `changed`."""
    return change_images(workspace, project, body.image_ids, body.action, value=body.value,
                         labeler=acting(account, body.labeler, "labeler"))
