"""Routes for uploads: start an upload, send its files in as many requests as needed, then import it as a job."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile

from defectlab.web.access import Labeler
from defectlab.web.jobs import start_job
from defectlab.web.routes import WorkspaceParameter, error_responses
from defectlab.web.uploads import require_upload, stage_files, start_upload

__all__ = ["router"]

router = APIRouter(prefix="/projects/{project}/uploads", tags=["uploads"],
                   responses=error_responses(400, 401, 403, 404))


@router.post("", status_code=201, summary="Start an upload of images and label files")
def create_upload(project: str, workspace: WorkspaceParameter, account: Labeler) -> dict[str, str]:
    """Return the `upload` id to send files to."""
    workspace.require_project(project)
    return {"upload": start_upload(workspace)}


@router.post("/{upload}/files", summary="Add files to an upload")
def add_upload_files(
    project: str,
    upload: str,
    workspace: WorkspaceParameter,
    account: Labeler,
    files: Annotated[list[UploadFile], File(description="The files; each file name is its path relative to the "
                                                        "dropped folder, such as `good/001.png`. A zip archive is "
                                                        "unpacked at import.")],
) -> dict[str, int]:
    """Store the files under their relative paths and return how many `files` and `bytes` came, and the
    `upload_bytes` so far. A path with '..', or an upload past the byte limit, is rejected with 400."""
    workspace.require_project(project)
    return stage_files(workspace, upload, [(file.filename or "", file.file) for file in files])


@router.post("/{upload}/import", status_code=202, summary="Import an upload as a job")
def import_upload_files(project: str, upload: str, workspace: WorkspaceParameter, account: Labeler) -> dict[str, Any]:
    """Start a job that imports the upload like `defectlab import` imports a folder. Once it succeeded, its
    `result` is the import report: `added`, `updated`, `unchanged`, `skipped` and `problems`, each with the
    file and what was wrong, while the other files are kept."""
    workspace.require_project(project)
    require_upload(workspace, upload)
    return start_job(workspace, "import", project, {"upload": upload}, started_by=account.name)
