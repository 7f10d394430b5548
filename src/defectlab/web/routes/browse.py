"""Routes of the data browser: a page of images with filters and sorting, metadata keys, tags, and bulk changes.

The filters are query parameters shared with the labeling routes, so the
labeling page's next and previous follow the order the browser showed. With
``model``, only the images of that model's newest evaluation pass, and
``outcome`` and the score range narrow them further.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from defectlab.data.browse import (
    SORT_KEYS,
    ImageFilter,
    browse_images,
    change_images,
    list_labelers,
    list_tags,
    metadata_keys,
)
from defectlab.errors import InvalidInputError
from defectlab.web.access import Reviewer, acting
from defectlab.web.bodies import BulkChange
from defectlab.web.evaluations import OUTCOMES, evaluated_images, select_evaluated
from defectlab.web.routes import WorkspaceParameter, error_responses

__all__ = ["FilterParameters", "SortParameter", "router"]

router = APIRouter(prefix="/projects/{project}", tags=["data browser"],
                   responses=error_responses(400, 401, 403, 404))


def evaluation_of(
    project: str,
    workspace: WorkspaceParameter,
    model: Annotated[int | None, Query(description="Only the images of this model's newest evaluation.")] = None,
) -> dict[int, dict[str, Any]] | None:
    return None if model is None else evaluated_images(workspace, project, model)


# FastAPI runs a dependency once per request, so the filter and the page share one evaluation.
EvaluationParameter = Annotated[dict[int, dict[str, Any]] | None, Depends(evaluation_of)]


def image_filter(
    evaluated: EvaluationParameter,
    label: Annotated[str | None, Query(description="Only images whose label is this class (`ok`: no defect).")] = None,
    split: Annotated[str | None, Query(description="`train`, `dev`, `test`, or `none` for images without one.")]
    = None,
    labeled: Annotated[bool | None, Query(description="Only labeled (true) or not labeled (false) images.")] = None,
    labeler: Annotated[str | None, Query(description="Only images with an annotation by this labeler.")] = None,
    key: Annotated[str | None, Query(description="Only images whose metadata has this key.")] = None,
    value: Annotated[str | None, Query(description="With `key`: only images whose metadata value, as text, is this.")]
    = None,
    excluded: Annotated[bool | None, Query(description="Only excluded (true) or included (false) images.")] = None,
    tag: Annotated[str | None, Query(description="Only images that carry this tag.")] = None,
    outcome: Annotated[str | None, Query(description="With `model`: only images with this outcome.",
                                         json_schema_extra={"enum": list(OUTCOMES)})] = None,
    score_min: Annotated[float | None, Query(description="With `model`: only images scoring at least this.")] = None,
    score_max: Annotated[float | None, Query(description="With `model`: only images scoring at most this.")] = None,
) -> ImageFilter:
    image_ids = None
    if evaluated is not None:
        image_ids = select_evaluated(evaluated, outcome=outcome or None, score_min=score_min, score_max=score_max)
    elif outcome or score_min is not None or score_max is not None:
        raise InvalidInputError("outcome and score filters need a model, because they come from its newest "
                                "evaluation; give model too, such as model=1")
    return ImageFilter(label=label or None, split=split or None, labeled=labeled, labeler=labeler or None,
                       metadata_key=key or None,
                       metadata_value=value if key else None, excluded=excluded, tag=tag or None,
                       image_ids=image_ids)


FilterParameters = Annotated[ImageFilter, Depends(image_filter)]
SortParameter = Annotated[str, Query(description="The order; a leading '-' reverses it.",
                                     json_schema_extra={"enum": list(SORT_KEYS)})]


@router.get("/browse", summary="One page of the project's images, filtered and sorted")
def browse_project_images(
    project: str,
    workspace: WorkspaceParameter,
    where: FilterParameters,
    evaluated: EvaluationParameter,
    sort: SortParameter = "path",
    page: Annotated[int, Query(description="The page, from 1.")] = 1,
    page_size: Annotated[int, Query(description="Images per page, 1 to 500.")] = 60,
) -> dict[str, Any]:
    """Return `total` (images that pass the filters), `page`, `page_size`, `pages` and `images`: each with `id`,
    `path`, `width`, `height`, `split`, `label`, `excluded`, `version`, `metadata` and `tags`. With `model`, each
    image also has `prediction`: `outcome`, `score`, `predicted`, `true` and the `split` evaluated."""
    found = browse_images(workspace, project, where, sort=sort, page=page, page_size=page_size)
    if evaluated is not None:
        for image in found["images"]:
            image["prediction"] = evaluated.get(image["id"])
    return found


@router.get("/metadata", summary="The project's metadata keys with their values")
def read_metadata_keys(project: str, workspace: WorkspaceParameter) -> dict[str, list[str]]:
    """Return each key with up to 50 of its distinct values, as text, for the browser's metadata filter."""
    return metadata_keys(workspace, project)


@router.get("/tags", summary="The tags on the project's images")
def read_tags(project: str, workspace: WorkspaceParameter) -> list[str]:
    """Return the tags sorted, for the browser's tag filter; bulk changes add and remove them."""
    return list_tags(workspace, project)


@router.get("/labelers", summary="Everyone who labeled the project's images")
def read_labelers(project: str, workspace: WorkspaceParameter) -> list[str]:
    """Return the names sorted; `import` is the labeler of labels that came with an import."""
    return list_labelers(workspace, project)


@router.post("/images/bulk", summary="Change many images at once")
def change_selected_images(project: str, body: BulkChange, workspace: WorkspaceParameter,
                           account: Reviewer) -> dict[str, Any]:
    """Set the split or the image-level class of the selected images, exclude them from training (or include
    them again), or add or remove a tag, in one transaction. Return `action` and how many images `changed`."""
    return change_images(workspace, project, body.image_ids, body.action, value=body.value,
                         labeler=acting(account, body.labeler, "labeler"))
