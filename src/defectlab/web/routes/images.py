"""Routes for a project's images: listing them, reading one with its original bytes, and setting its class."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Response
from PIL import Image as PillowImage
from sqlalchemy.orm import Session

from defectlab.data.labels import describe_image, list_images, set_image_class
from defectlab.errors import NotFoundError
from defectlab.web.access import Labeler, acting
from defectlab.web.bodies import ImageClass
from defectlab.web.routes import WorkspaceParameter, error_responses
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Image

__all__ = ["router"]

router = APIRouter(prefix="/projects/{project}/images", tags=["images"],
                   responses=error_responses(400, 401, 403, 404))


@router.get("", summary="List a project's images")
def list_project_images(
    project: str,
    workspace: WorkspaceParameter,
    unlabeled: Annotated[bool, Query(description="Only images without any label.")] = False,
    source: Annotated[str | None, Query(description="Only images whose metadata `source` is this, "
                                                    "such as `production` for captured images.")] = None,
) -> list[dict[str, Any]]:
    """Return each image in id order: `id`, `path`, `split`, `label`, `version` and `metadata`."""
    return list_images(workspace, project, unlabeled=unlabeled, source=source)


@router.get("/{image_id}", summary="Describe one image")
def read_image(project: str, image_id: int, workspace: WorkspaceParameter) -> dict[str, Any]:
    """Return `id`, `path`, `split`, `label`, `version` (send it back with a change) and `metadata`."""
    with workspace.session() as session:
        return describe_image(_find_image(workspace, session, project, image_id))


@router.put("/{image_id}/class", summary="Give an image an image-level class", responses=error_responses(409))
def put_image_class(project: str, image_id: int, body: ImageClass, workspace: WorkspaceParameter,
                    account: Labeler) -> dict[str, Any]:
    """Replace the class this labeler gave the image before and return the image with its new version."""
    return set_image_class(workspace, project, image_id, body.class_name, 
                           labeler=acting(account, body.labeler, "labeler"), version=body.version)


@router.get("/{image_id}/file", summary="Download the image's original bytes", response_class=Response,
            responses={200: {"content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "The file as it was imported, with its own content type."}})
def read_image_file(project: str, image_id: int, workspace: WorkspaceParameter) -> Response:
    with workspace.session() as session:
        image = _find_image(workspace, session, project, image_id)
        digest, container, path = image.sha256, image.format, image.path
    data = workspace.blobs.get(digest)
    name = quote(PurePosixPath(path).name)
    return Response(data, media_type=_media_type(container),
                    headers={"Content-Disposition": f"inline; filename*=UTF-8''{name}"})


def _find_image(workspace: Workspace, session: Session, project_name: str, image_id: int) -> Image:
    project = workspace.get_project(session, project_name)
    image = session.get(Image, image_id)
    if image is None or image.project_id != project.id:
        raise NotFoundError(f"image {image_id} is not in project {project_name!r}; list them with "
                            f"GET /api/projects/{project_name}/images")
    return image


def _media_type(container: str) -> str:
    """Return the MIME type of a Pillow format name such as ``PNG``, or a generic one for an unknown format."""
    PillowImage.init()
    return PillowImage.MIME.get(container.upper(), "application/octet-stream")
