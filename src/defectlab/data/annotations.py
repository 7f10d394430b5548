"""Reading and replacing an image's label as the labeling page edits it: a class, boxes, polygons and masks.

The labeling page edits the label the project trains on, so a save replaces
every annotation of the image, each stamped with the labeler who saved.
People who label blind, apart from each other, use a labeling task instead
(``defectlab.consensus``). Every save carries the image version it was based
on, and a save based on an older version is rejected with ``ConflictError``,
so one person's save never silently replaces another's.

Three states are told apart: *not labeled* (no annotation), *no defect* (one
image-level ``ok`` class) and *defective* (a defect class, regions, or both).

A mask travels as the crop of its bounding box: ``{"x", "y", "png"}`` where
``png`` is a base64 PNG whose non-zero pixels are inside the mask, placed with
its top-left corner at pixel ``(x, y)`` of the image. A whole 8000x8000 mask
would cost the browser hundreds of megabytes for a defect of a few pixels.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
from typing import Any

import numpy as np
from PIL import Image as PILImage

from defectlab.data.regions import fit_region, mask_to_png, png_to_mask
from defectlab.data.snapshot import image_label
from defectlab.errors import ConflictError, InvalidInputError, NotFoundError
from defectlab.formats._layout import is_ok_folder
from defectlab.formats.records import OK_CLASS, Region
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, DefectClass, Image, Project

__all__ = ["LABEL_STATES", "read_annotations", "save_annotations"]

logger = logging.getLogger(__name__)

LABEL_STATES = ("not_labeled", "no_defect", "defective")


def read_annotations(workspace: Workspace, project_name: str, image_id: int) -> dict[str, Any]:
    """Return an image's label for editing.

    Returns:
        ``image_id``, ``path``, ``width``, ``height``, ``version`` (send it back
        with the save), ``state`` (one of ``LABEL_STATES``), ``class`` (the
        image-level class or None) and ``regions``: each with ``class``,
        ``labeler`` and one of ``box``, ``polygon`` or ``mask`` (as a crop).

    Raises:
        NotFoundError: The project or image does not exist.
    """
    with workspace.session() as session:
        _, image = _find(workspace, session, project_name, image_id)
        return _describe(workspace, image)


def save_annotations(workspace: Workspace, project_name: str, image_id: int, *, labeler: str, version: int,
                     class_name: str | None = None, regions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Replace the image's label with ``class_name`` and ``regions``; with neither, the image becomes not labeled.

    Args:
        version: The image version the edit was based on.
        class_name: The image-level class; ``ok`` for no defect, which allows no regions.
        regions: Dicts with ``class`` (a defect class) and one of ``box``
            ``[x_min, y_min, x_max, y_max]``, ``polygon`` ``[x1, y1, x2, y2, ...]``
            in displayed pixels, or ``mask`` ``{"x", "y", "png"}``.

    Returns:
        The image's label as ``read_annotations`` returns it, at its new version.

    Raises:
        ConflictError: ``version`` is not the current version: someone saved since.
        InvalidInputError: An unknown class, an ``ok`` image with regions, or a
            region that is not valid (the message names it by its position).
        NotFoundError: The project or image does not exist.
    """
    regions = regions or []

    with workspace.session() as session:
        project, image = _find(workspace, session, project_name, image_id)
        if version != image.version:
            raise ConflictError(f"image {image_id} ({image.path}) is at version {image.version}, not {version}: "
                                "someone saved it since. Load it again to see their label, then repeat your change")
        classes = {c.name: c for c in project.classes}
        rows = _class_rows(classes, class_name, labeler, has_regions=bool(regions), project=project_name)
        rows += [_region_row(workspace, classes, image, index, region, labeler) for index, region in enumerate(regions)]
        image.annotations = rows
        image.version += 1
        session.flush()
        logger.info("image %d of %s saved by %s at version %d: %d annotations", image_id, project_name, labeler,
                    image.version, len(rows))
        return _describe(workspace, image)


def _find(workspace: Workspace, session, project_name: str, image_id: int) -> tuple[Project, Image]:
    project = workspace.get_project(session, project_name)
    image = session.get(Image, image_id)
    if image is None or image.project_id != project.id:
        raise NotFoundError(f"image {image_id} is not in project {project_name!r}; list them with "
                            f"GET /api/projects/{project_name}/images")
    return project, image


def _class_rows(classes: dict[str, DefectClass], class_name: str | None, labeler: str, *, has_regions: bool,
                project: str) -> list[Annotation]:
    if class_name is None:
        return []
    name = OK_CLASS if is_ok_folder(class_name) else class_name
    if name == OK_CLASS and has_regions:
        raise InvalidInputError("an image marked 'no defect' (ok) cannot have regions; remove the regions or "
                                "choose a defect class")
    return [Annotation(defect_class=_known_class(classes, name, project), labeler=labeler, kind="class")]


def _known_class(classes: dict[str, DefectClass], name: str, project: str) -> DefectClass:
    if name not in classes:
        raise InvalidInputError(f"class {name!r} is not in project {project!r}; use one of: {', '.join(classes)}")
    return classes[name]


def _region_row(workspace: Workspace, classes: dict[str, DefectClass], image: Image, index: int,
                region: dict[str, Any], labeler: str) -> Annotation:
    where = f"region {index + 1}"
    name = region.get("class")
    if name == OK_CLASS or is_ok_folder(str(name)):
        raise InvalidInputError(f"{where} has class 'ok'; a region marks a defect, so give it a defect class")
    defect_class = _known_class(classes, str(name), image.project.name)
    parsed = _parse_region(region, str(name), where, image)
    fitted, problems = fit_region(parsed, width=image.width, height=image.height, path=image.path)
    if fitted is None:
        reasons = "; ".join(problem.message for problem in problems) or "the mask is empty"
        raise InvalidInputError(f"{where} is not valid: {reasons}")
    if fitted.kind == "mask":
        digest = workspace.blobs.put(mask_to_png(fitted.mask))
        return Annotation(defect_class=defect_class, labeler=labeler, kind="mask", mask_sha256=digest)
    geometry = list(fitted.box) if fitted.kind == "box" else list(fitted.polygon)
    return Annotation(defect_class=defect_class, labeler=labeler, kind=fitted.kind, geometry=geometry)


def _parse_region(region: dict[str, Any], name: str, where: str, image: Image) -> Region:
    shapes = [key for key in ("box", "polygon", "mask") if region.get(key) is not None]
    if len(shapes) != 1:
        raise InvalidInputError(f"{where} needs exactly one of box, polygon or mask; it has "
                                f"{', '.join(shapes) or 'none'}")
    if shapes == ["box"]:
        box = _numbers(region["box"], where, "box")
        if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
            raise InvalidInputError(f"{where}: box {box} is not valid; give [x_min, y_min, x_max, y_max] with "
                                    "x_max > x_min and y_max > y_min")
        return Region("box", name, box=tuple(box))
    if shapes == ["polygon"]:
        polygon = _numbers(region["polygon"], where, "polygon")
        if len(polygon) < 6 or len(polygon) % 2:
            raise InvalidInputError(f"{where}: a polygon needs at least 3 points as [x1, y1, x2, y2, ...]; "
                                    f"{len(polygon)} values given")
        return Region("polygon", name, polygon=polygon)
    return Region("mask", name, mask=_mask_from_crop(region["mask"], where, image))


def _numbers(values: Any, where: str, field: str) -> list[float]:
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               for v in values):
        raise InvalidInputError(f"{where}: {field} must be a list of numbers, not {values!r:.80}")
    return [float(v) for v in values]


def _mask_from_crop(crop: Any, where: str, image: Image) -> np.ndarray:
    """Place a mask crop into a boolean mask of the image's size; parts outside the image are dropped."""
    if not isinstance(crop, dict) or not {"x", "y", "png"} <= set(crop):
        raise InvalidInputError(f"{where}: a mask is {{\"x\": X, \"y\": Y, \"png\": BASE64}}, not {crop!r:.80}")
    try:
        data = base64.b64decode(str(crop["png"]).split(",")[-1], validate=True)
        with PILImage.open(io.BytesIO(data)) as picture:
            if picture.width * picture.height > image.width * image.height:
                raise InvalidInputError(f"{where}: the mask crop is larger than the "
                                        f"{image.width}x{image.height} image")
            inside = _inside(picture)
    except (binascii.Error, OSError, ValueError) as error:
        raise InvalidInputError(f"{where}: the mask is not a base64 PNG ({error})") from error

    x, y = int(crop["x"]), int(crop["y"])
    mask = np.zeros((image.height, image.width), dtype=bool)
    top, left = max(y, 0), max(x, 0)
    bottom, right = min(y + inside.shape[0], image.height), min(x + inside.shape[1], image.width)
    if bottom > top and right > left:
        mask[top:bottom, left:right] = inside[top - y:bottom - y, left - x:right - x]
    return mask


def _inside(picture: PILImage.Image) -> np.ndarray:
    """Return where a mask picture is set: its alpha when it has one (a canvas export), else its grey level.

    A browser canvas draws the edges of brush and eraser strokes with partial
    alpha, so alpha counts from half opacity; what remains of an erased stroke
    then does not become a faint ring of mask pixels.
    """
    if picture.mode in ("RGBA", "LA") or "transparency" in picture.info:
        return np.asarray(picture.convert("RGBA"))[:, :, 3] >= 128
    return np.asarray(picture.convert("L")) > 0


def _describe(workspace: Workspace, image: Image) -> dict[str, Any]:
    given = [a for a in image.annotations if a.kind == "class"]
    regions = [_describe_region(workspace, a) for a in image.annotations if a.kind != "class"]
    label = image_label(image.annotations)
    state = "not_labeled" if label is None else "no_defect" if label == OK_CLASS and not regions else "defective"
    return {"image_id": image.id, "path": image.path, "width": image.width, "height": image.height,
            "version": image.version, "state": state, "label": label,
            "class": given[-1].defect_class.name if given else None, "regions": regions}


def _describe_region(workspace: Workspace, annotation: Annotation) -> dict[str, Any]:
    described: dict[str, Any] = {"class": annotation.defect_class.name, "labeler": annotation.labeler}
    if annotation.kind == "mask":
        described["mask"] = _mask_crop(png_to_mask(workspace.blobs.get(annotation.mask_sha256)))
    else:
        described[annotation.kind] = list(annotation.geometry or [])
    return described


def _mask_crop(mask: np.ndarray) -> dict[str, Any]:
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return {"x": 0, "y": 0, "width": 0, "height": 0, "png": ""}
    top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    png = base64.b64encode(mask_to_png(mask[top:bottom, left:right])).decode("ascii")
    return {"x": int(left), "y": int(top), "width": int(right - left), "height": int(bottom - top), "png": png}
