"""Import images and labels into a project: decode, check, store, all or nothing.

A file that cannot be decoded, or a label that cannot be used, becomes a
problem in the report and the rest goes on. The database rows of one import
are written in one transaction, so an import that fails or is killed leaves
the project as it was. Blobs written before the failure are unreferenced and
cost only disk space until ``BlobStore.collect_garbage`` runs.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from defectlab.data.metadata import read_metadata_csv
from defectlab.data.regions import fit_region, mask_to_png
from defectlab.errors import ImageDecodeError, InvalidInputError
from defectlab.formats import read_dataset
from defectlab.formats.records import SPLITS, ClassSpec, ImportedImage, Problem, Region
from defectlab.images import decode_image
from defectlab.workspace import Workspace
from defectlab.workspace.schema import Annotation, DefectClass, Image, Project

__all__ = ["ImportReport", "import_path"]

logger = logging.getLogger(__name__)

IMPORT_LABELER = "import"
Progress = Callable[[int, int, str], None]


@dataclass
class ImportReport:
    """What an import added, changed and skipped, with every problem found.

    Attributes:
        skipped: Images found but not imported (not decodable, not readable).
        per_class: Class name to the number of imported images that carry it,
            as the image-level class or on at least one region. An image with
            regions of two classes counts once for each. Images without a
            label count under ``(unlabeled)``.
        regions_per_class: Class name to the number of imported regions
            (boxes, polygons, masks).
        per_split: Split stored for each imported image (``(none)`` when it
            has none), after this import.
    """

    project: str
    format: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    per_class: Counter = field(default_factory=Counter)
    regions_per_class: Counter = field(default_factory=Counter)
    per_split: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "project": self.project,
            "format": self.format,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "per_class": dict(sorted(self.per_class.items())),
            "regions_per_class": dict(sorted(self.regions_per_class.items())),
            "per_split": dict(sorted(self.per_split.items())),
            "problems": [
                {"path": p.path, "line": p.line, "severity": p.severity, "message": p.message}
                for p in self.problems
            ],
        }


@dataclass
class _Decoded:
    item: ImportedImage
    sha256: str
    format: str
    width: int
    height: int
    channels: int
    bit_depth: int
    regions: list[Region]


def import_path(
    workspace: Workspace,
    project_name: str,
    path: Path,
    *,
    format: str | None = None,
    split: str | None = None,
    metadata_csv: Path | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import the images and labels under ``path`` into a project.

    Args:
        format: A name from ``defectlab.formats.FORMATS``; detected when None.
        split: Split given to images whose source names none.
        metadata_csv: CSV with a ``path`` column and one column per metadata key.

    Raises:
        InvalidInputError: The path, format, split or metadata file is not valid.
        NotFoundError: The project does not exist.
    """
    if split is not None and split not in SPLITS:
        raise InvalidInputError(f"split {split!r} is not valid; use one of: {', '.join(SPLITS)}")
    if not path.exists():
        raise InvalidInputError(f"{path} does not exist; give a folder or label file to import")
    metadata, metadata_problems = read_metadata_csv(metadata_csv) if metadata_csv else ({}, [])
    with workspace.session() as session:
        task = workspace.get_project(session, project_name).task

    batch = read_dataset(path, format)
    report = ImportReport(project=project_name, format=batch.format,
                          problems=[*metadata_problems, *batch.problems])
    decoded = _decode_all(workspace, batch.images, task=task, report=report, progress=progress)

    with workspace.session() as session:
        project = workspace.get_project(session, project_name)
        classes = _ensure_classes(session, project, batch.classes, decoded)
        for entry in decoded:
            _apply_metadata(entry.item, metadata, split)
            _store_image(session, workspace, project, classes, entry, report)
    _check_metadata_paths(metadata, decoded, report)
    logger.info(
        "imported %s into %s: %d added, %d updated, %d unchanged, %d skipped, %d problems",
        path, project_name, report.added, report.updated, report.unchanged, report.skipped, len(report.problems),
    )
    return report


def _decode_all(workspace: Workspace, items: list[ImportedImage], *, task: str, report: ImportReport,
                progress: Progress | None) -> list[_Decoded]:
    decoded = []
    for index, item in enumerate(items):
        if progress is not None:
            progress(index, len(items), item.path)
        entry = _decode_one(workspace, item, task=task, report=report)
        if entry is None:
            report.skipped += 1
        else:
            decoded.append(entry)
    return decoded


def _decode_one(workspace: Workspace, item: ImportedImage, *, task: str, report: ImportReport) -> _Decoded | None:
    try:
        data = item.source.read_bytes()
        image = decode_image(data, source=item.path)
    except ImageDecodeError as error:
        report.problems.append(Problem(item.path, f"{_strip_source(str(error), item.path)}; the image was not imported"))
        return None
    except OSError as error:
        report.problems.append(Problem(item.path, f"the file could not be read ({error}); the image was not imported"))
        return None

    _check_declared_size(item, image.width, image.height, report)
    regions = []
    for region in item.regions:
        fitted, problems = fit_region(region, width=image.width, height=image.height, path=item.path)
        report.problems.extend(problems)
        if fitted is not None:
            regions.append(fitted)
    _derive_image_label(item, regions, task)
    digest = workspace.blobs.put(data)
    return _Decoded(item, digest, image.format, image.width, image.height, image.channels, image.bit_depth, regions)


def _strip_source(message: str, source: str) -> str:
    prefix = f"{source}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _check_declared_size(item: ImportedImage, width: int, height: int, report: ImportReport) -> None:
    if item.declared_size is None or tuple(item.declared_size) == (width, height):
        return
    declared_width, declared_height = item.declared_size
    report.problems.append(Problem(
        item.path,
        f"the label file declares {declared_width}x{declared_height} but the image decodes to {width}x{height} "
        "(EXIF orientation applied); labels are kept in the decoded image's pixels, check that they line up",
        "warning",
    ))


def _derive_image_label(item: ImportedImage, regions: list[Region], task: str) -> None:
    """Give classification and anomaly images a class when only regions were labeled."""
    if item.label is not None or not regions or task not in ("classification", "anomaly"):
        return
    areas = Counter()
    for region in regions:
        areas[region.class_name] += 1
    item.label = areas.most_common(1)[0][0]


def _ensure_classes(session: Session, project: Project, specs: list[ClassSpec],
                    decoded: list[_Decoded]) -> dict[str, DefectClass]:
    classes = {defect_class.name: defect_class for defect_class in project.classes}
    wanted = [(spec.name, spec.external_id) for spec in specs]
    for entry in decoded:
        names = [entry.item.label] if entry.item.label else []
        wanted.extend((name, None) for name in names + [region.class_name for region in entry.regions])
    for name, external_id in wanted:
        if name in classes:
            if external_id is not None and classes[name].external_id is None:
                classes[name].external_id = external_id
            continue
        defect_class = DefectClass(name=name, external_id=external_id, position=len(classes))
        project.classes.append(defect_class)
        classes[name] = defect_class
    session.flush()
    return classes


def _apply_metadata(item: ImportedImage, metadata: dict[str, dict[str, str]], split: str | None) -> None:
    item.metadata = {**item.metadata, **metadata.get(item.path, {})}
    if item.split is None:
        item.split = split


def _check_metadata_paths(metadata: dict[str, dict[str, str]], decoded: list[_Decoded], report: ImportReport) -> None:
    imported = {entry.item.path for entry in decoded}
    for path in sorted(set(metadata) - imported):
        report.problems.append(Problem(path, "the metadata file names this path but no such image was imported",
                                       "warning"))


def _store_image(session: Session, workspace: Workspace, project: Project, classes: dict[str, DefectClass],
                 entry: _Decoded, report: ImportReport) -> None:
    item = entry.item
    image = session.scalar(select(Image).where(Image.project_id == project.id, Image.path == item.path))
    annotations = _annotations_for(workspace, classes, entry)
    if image is None:
        image = Image(project=project, path=item.path)
        session.add(image)
        report.added += 1
    elif _unchanged(image, entry, annotations):
        report.unchanged += 1
        _count(report, entry, image.split)
        return
    else:
        image.version += 1
        image.annotations = [a for a in image.annotations if a.labeler != IMPORT_LABELER] if annotations else image.annotations
        report.updated += 1

    image.sha256, image.format = entry.sha256, entry.format
    image.width, image.height = entry.width, entry.height
    image.channels, image.bit_depth = entry.channels, entry.bit_depth
    image.split = item.split if item.split is not None else image.split
    image.meta = {**(image.meta or {}), **item.metadata}
    image.annotations.extend(annotations)
    _count(report, entry, image.split)


def _annotations_for(workspace: Workspace, classes: dict[str, DefectClass], entry: _Decoded) -> list[Annotation]:
    annotations = []
    if entry.item.label is not None:
        annotations.append(Annotation(defect_class=classes[entry.item.label], labeler=IMPORT_LABELER, kind="class"))
    for region in entry.regions:
        annotation = Annotation(defect_class=classes[region.class_name], labeler=IMPORT_LABELER, kind=region.kind)
        if region.kind == "box":
            annotation.geometry = [float(v) for v in region.box]
        elif region.kind == "polygon":
            annotation.geometry = [float(v) for v in region.polygon]
        else:
            annotation.mask_sha256 = workspace.blobs.put(mask_to_png(region.mask))
        annotations.append(annotation)
    return annotations


def _unchanged(image: Image, entry: _Decoded, annotations: list[Annotation]) -> bool:
    existing = [(a.defect_class.name, a.kind, a.geometry, a.mask_sha256)
                for a in image.annotations if a.labeler == IMPORT_LABELER]
    incoming = [(a.defect_class.name, a.kind, a.geometry, a.mask_sha256) for a in annotations]
    return (image.sha256 == entry.sha256 and existing == incoming
            and (entry.item.split is None or entry.item.split == image.split)
            and all(image.meta.get(k) == v for k, v in entry.item.metadata.items()))


def _count(report: ImportReport, entry: _Decoded, stored_split: str | None) -> None:
    names = {region.class_name for region in entry.regions}
    if entry.item.label is not None:
        names.add(entry.item.label)
    report.per_class.update(names or {"(unlabeled)"})
    report.regions_per_class.update(region.class_name for region in entry.regions)
    report.per_split[stored_split or "(none)"] += 1
