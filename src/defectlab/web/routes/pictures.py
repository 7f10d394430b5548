"""Routes that serve 8-bit views of an image: thumbnails and deep-zoom tiles, with an automatic contrast window.

Thumbnails are kept on disk in the workspace's ``cache/thumbnails`` folder,
named by the image's SHA-256 and size, so a page of the data browser decodes
each image once. The tile pyramids of the few images last opened stay in
memory, because a viewer asks for dozens of tiles of one image in a burst.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from defectlab.images import decode_image
from defectlab.images.display import TilePyramid, contrast_window, encode_png, thumbnail, to_view
from defectlab.web.routes import WorkspaceParameter, error_responses
from defectlab.web.routes.images import _find_image
from defectlab.workspace import Workspace

__all__ = ["router"]

router = APIRouter(prefix="/projects/{project}/images/{image_id}", tags=["images"],
                   responses=error_responses(400, 401, 403, 404))

CACHED_PYRAMIDS = 3
"""Tile pyramids kept in memory; an 8000x8000 grayscale image costs about 85 MB with its levels."""

_STATE_LOCK = threading.Lock()

_PNG = {200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
              "description": "An 8-bit PNG."}}
# The bytes behind an image id never change, so a browser may keep its views for a day without asking again.
_CACHE_HEADERS = {"Cache-Control": "private, max-age=86400"}


@router.get("/thumbnail", summary="A small 8-bit view of the image", response_class=Response, responses=_PNG)
def read_thumbnail(project: str, image_id: int, workspace: WorkspaceParameter,
                   size: Annotated[int, Query(ge=16, le=1024, description="Longest side in pixels.")] = 192) -> Response:
    """Return a PNG at most `size` pixels on its longer side, with the automatic contrast window of
    16-bit and low-contrast images."""
    digest = _digest(workspace, project, image_id)
    cached = workspace.root / "cache" / "thumbnails" / digest[:2] / f"{digest}-{size}.png"
    if not cached.exists():
        pixels = decode_image(workspace.blobs.get(digest), source=f"image {image_id}").pixels
        _write_atomically(cached, encode_png(thumbnail(to_view(pixels, contrast_window(pixels)), size)))
    return Response(cached.read_bytes(), media_type="image/png", headers=_CACHE_HEADERS)


@router.get("/tiles", summary="The size and levels of the image's deep-zoom tiles")
def describe_tiles(project: str, image_id: int, request: Request, workspace: WorkspaceParameter) -> dict[str, Any]:
    """Return `width`, `height`, `tile_size` and `levels`. Level 0 is full resolution and each next level
    is half the size of the one before; the last one fits in one tile."""
    return _pyramid(request, workspace, project, image_id).describe()


@router.get("/tiles/{level}/{column}/{row}.png", summary="One deep-zoom tile", response_class=Response,
            responses=_PNG)
def read_tile(project: str, image_id: int, level: int, column: int, row: int, request: Request,
              workspace: WorkspaceParameter) -> Response:
    """Return the tile of `level` whose top-left pixel is (`column`, `row`) times the tile size in that level's
    view, with the contrast window of the whole image."""
    tile = _pyramid(request, workspace, project, image_id).tile(level, column, row)
    return Response(encode_png(tile), media_type="image/png", headers=_CACHE_HEADERS)


def _digest(workspace: Workspace, project: str, image_id: int) -> str:
    with workspace.session() as session:
        return _find_image(workspace, session, project, image_id).sha256


def _pyramid(request: Request, workspace: Workspace, project: str, image_id: int) -> TilePyramid:
    digest = _digest(workspace, project, image_id)
    state = request.app.state
    with _STATE_LOCK:
        if not hasattr(state, "pyramids"):
            state.pyramids, state.pyramid_builds = OrderedDict(), {}
        build = state.pyramid_builds.setdefault(digest, threading.Lock())

    # A viewer asks for many tiles of a new image at once. One request decodes it while the others wait
    # for its pyramid, because each decode of an 8000x8000 image would take hundreds of megabytes.
    with build:
        with _STATE_LOCK:
            if digest in state.pyramids:
                state.pyramids.move_to_end(digest)
                return state.pyramids[digest]
        pixels = decode_image(workspace.blobs.get(digest), source=f"image {image_id}").pixels
        pyramid = TilePyramid(to_view(pixels, contrast_window(pixels)))
        with _STATE_LOCK:
            state.pyramids[digest] = pyramid
            while len(state.pyramids) > CACHED_PYRAMIDS:
                evicted, _ = state.pyramids.popitem(last=False)
                state.pyramid_builds.pop(evicted, None)
    return pyramid


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
