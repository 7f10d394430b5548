"""Agreement between labelers on regions (boxes, polygons, masks), and each labeler's misses and extras.

Pixel convention: coordinates are continuous pixel coordinates of the displayed
image. Pixel ``(row, column)`` covers ``column..column + 1`` in x and
``row..row + 1`` in y, and it belongs to a box or polygon when its centre lies
inside. So a box ``[x_min, y_min, x_max, y_max]`` with integer corners covers
the pixels with ``x_min <= column < x_max`` and ``y_min <= row < y_max``, the
same rule that mask export uses. A mask's pixel ``(row, column)`` lies at that
place in the image.

Intersection over union (IoU) of two boxes is exact, from their areas. Any pair
with a polygon or a mask is counted in pixels, and each shape is rasterized only
within its own pixel extent, so two small polygons on an 8000x8000 image cost
only their own area. A mask is scanned once for its extent. On boxes with
integer corners both ways give the same IoU.

Regions of two labelers are paired one to one by the Hungarian method
(SciPy's ``linear_sum_assignment``), which maximizes the total IoU over pairs
with IoU at or above the threshold. The class is ignored for pairing, so a
pair with different classes is a class disagreement, not a missed region.

Each labeler is measured against the consensus of the *other* labelers who
labeled the image, so that one person's misses are not hidden by their own
regions. The other labelers' regions are clustered greedily, in labeler-name
order: each region of the first labeler starts a cluster, and the regions of
each next labeler are paired with the clusters' first regions as above, joining
the paired cluster or starting a new one. A cluster drawn by a strict majority
of the other labelers is a consensus region, with its first region as its
geometry and the class most of its members gave (none on a tie). A cluster drawn
by exactly half of them is undecided, so it is neither a consensus region nor an
extra region. An image whose only clusters are undecided has no consensus, so it
is left out of the escape and overkill rates.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from itertools import combinations
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from defectlab.errors import InvalidInputError
from defectlab.formats._raster import fill_polygon
from defectlab.formats.records import OK_CLASS

__all__ = ["Matching", "Shape", "image_region_agreement", "match_shapes", "measure_region_agreement", "shape_iou"]

logger = logging.getLogger(__name__)

SHAPE_KINDS = ("box", "polygon", "mask")

_Extent = tuple[int, int, int, int]
"""Pixel indices ``(first column, first row, column stop, row stop)``, where the stops are exclusive."""


@dataclass(eq=False)
class Shape:
    """One region that one labeler drew on one image.

    Attributes:
        class_name: Defect class of the region. It is never ``ok``, because an
            image with no defect has no regions.
        kind: ``"box"``, ``"polygon"`` or ``"mask"``.
        geometry: For a box, pixel ``[x_min, y_min, x_max, y_max]``. For a
            polygon, the flat pixel list ``[x1, y1, x2, y2, ...]`` with at least
            3 points. None for a mask.
        mask: For a mask, a 2-D boolean or integer array ``(H, W)`` of the
            image's size, where nonzero pixels belong to the region. None otherwise.

    Raises:
        InvalidInputError: An unknown kind, a missing or malformed geometry or
            mask, or the class ``ok``.
    """

    class_name: str
    kind: str
    geometry: list[float] | None = None
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not self.class_name or self.class_name == OK_CLASS:
            raise InvalidInputError(
                f"invalid region class {self.class_name!r}: a region needs a defect class. "
                f"For an image without defects pass an empty list of regions, not a region of class {OK_CLASS!r}"
            )
        if self.kind not in SHAPE_KINDS:
            raise InvalidInputError(f"invalid region kind {self.kind!r}. Use one of {', '.join(SHAPE_KINDS)}")
        if self.kind == "mask":
            self._check_mask()
        else:
            self._check_geometry()

    def _check_mask(self) -> None:
        if self.mask is None or np.ndim(self.mask) != 2:
            shape = None if self.mask is None else np.shape(self.mask)
            raise InvalidInputError(f"invalid mask region: expected a 2-D array of the image's size, got shape {shape}")
        self.mask = np.asarray(self.mask)

    def _check_geometry(self) -> None:
        try:
            values = [] if self.geometry is None else [float(value) for value in self.geometry]
        except (TypeError, ValueError) as error:
            raise InvalidInputError(
                f"invalid {self.kind} {self.geometry!r}: it contains a value that is not a number"
            ) from error
        if not all(math.isfinite(value) for value in values):
            raise InvalidInputError(f"invalid {self.kind} {values}: it contains a value that is not a finite number")
        if self.kind == "box" and (len(values) != 4 or values[2] < values[0] or values[3] < values[1]):
            raise InvalidInputError(
                f"invalid box {values}: expected [x_min, y_min, x_max, y_max] with x_min <= x_max and y_min <= y_max"
            )
        if self.kind == "polygon" and (len(values) < 6 or len(values) % 2):
            raise InvalidInputError(
                f"invalid polygon of {len(values)} values: "
                "expected a flat list [x1, y1, x2, y2, ...] of at least 3 points"
            )
        self.geometry = values


@dataclass
class Matching:
    """One-to-one pairing of two labelers' regions on one image.

    Attributes:
        pairs: ``(index in first, index in second, IoU)`` per paired regions,
            sorted by the index in first.
        unmatched_first: Indices of the first labeler's regions left unpaired.
        unmatched_second: Indices of the second labeler's regions left unpaired.
        class_disagreements: ``(index in first, index in second)`` per pair whose classes differ.
    """

    pairs: list[tuple[int, int, float]]
    unmatched_first: list[int]
    unmatched_second: list[int]
    class_disagreements: list[tuple[int, int]]


class _PreparedShape:
    """A shape whose pixel extent and pixels are computed on first use and then kept.

    Pairing n by m shapes then rasterizes each shape once, and only when its
    extent overlaps another shape's extent.
    """

    def __init__(self, shape: Shape) -> None:
        self.shape = shape

    @cached_property
    def extent(self) -> _Extent | None:
        return _pixel_extent(self.shape)

    @cached_property
    def pixels(self) -> np.ndarray | None:
        """Boolean pixels over ``extent``, or None when the extent is empty."""
        return None if self.extent is None else _rasterize(self.shape, self.extent)

    @cached_property
    def pixel_count(self) -> int:
        return 0 if self.pixels is None else int(np.count_nonzero(self.pixels))


def shape_iou(first: Shape, second: Shape) -> float:
    """Compute the intersection over union of two regions, from 0.0 to 1.0.

    Two boxes give the exact IoU of their areas. Any pair with a polygon or a
    mask gives the IoU of their pixel sets under the convention in the module
    docstring. Two regions without a common pixel, or a region that covers no
    pixel, give 0.0.
    """
    return _prepared_iou(_PreparedShape(first), _PreparedShape(second))


def match_shapes(first: list[Shape], second: list[Shape], *, threshold: float = 0.5) -> Matching:
    """Pair two labelers' regions one to one, maximizing the total IoU over pairs with IoU >= ``threshold``.

    Classes are ignored for pairing, and a pair with different classes is
    listed in ``class_disagreements``.

    Raises:
        InvalidInputError: ``threshold`` outside ``(0, 1]``.
    """
    _check_threshold(threshold)

    return _match_prepared(_prepare(first), _prepare(second), threshold)


def image_region_agreement(shapes_by_labeler: dict[str, list[Shape] | None], *, threshold: float = 0.5) -> float | None:
    """Score how far the labelers of one image agree on its regions, from 0.0 to 1.0.

    Per pair of labelers the score is ``2 * same-class pairs / (n_first + n_second)``,
    where the pairs come from ``match_shapes``. A pair of labelers who both drew
    nothing scores 1.0. The image's score is the mean over labeler pairs.

    Args:
        shapes_by_labeler: Regions per labeler. A labeler mapped to None has
            not labeled the image and is left out.
        threshold: Minimum IoU of a pair of regions.

    Returns:
        The mean score, or None when fewer than two labelers labeled the image.

    Raises:
        InvalidInputError: ``threshold`` outside ``(0, 1]``.
    """
    _check_threshold(threshold)
    labeled = _prepare_image(shapes_by_labeler)
    if len(labeled) < 2:
        return None

    return _image_agreement(labeled, threshold)


def measure_region_agreement(
    images: list[tuple[int, str, dict[str, list[Shape] | None]]], *, threshold: float = 0.5
) -> dict[str, Any]:
    """Return per-image region agreement and each labeler's quality against the other labelers' consensus.

    Args:
        images: ``(image id, path, {labeler: regions})`` per image. The regions
            are None when that labeler has not labeled the image, and an empty
            list when the labeler found no defect.
        threshold: Minimum IoU of a pair of regions.

    Returns:
        A dict with these keys. Scores and rates are rounded to 6 places, and a
        rate is None when its denominator is zero.

        - ``labelers``: names of those who labeled at least one image, sorted.
        - ``images_with_two_or_more_labels``: how many images two or more labeled.
        - ``mean_agreement``: mean of the per-image scores of ``image_region_agreement``.
        - ``least_agreed``: ``{image_id, path, agreement, regions}`` per image
          labeled by two or more, least agreed first, ties by image id.
          ``regions`` maps each labeler of the image to their number of regions.
        - ``by_labeler``: per labeler, against the other labelers' consensus,
          ``images_compared``, ``consensus_regions``, ``regions_missed_rate``,
          ``extra_regions_rate``, ``escape_rate``, ``overkill_rate`` and
          ``class_disagreements`` (paired regions whose class differs from the
          consensus class).

    Raises:
        InvalidInputError: Fewer than two labelers, no image labeled by two of
            them, or ``threshold`` outside ``(0, 1]``.
    """
    _check_threshold(threshold)
    labeled = [(image_id, path, _prepare_image(shapes)) for image_id, path, shapes in images]
    labelers = sorted({name for _, _, shapes in labeled for name in shapes})
    if len(labelers) < 2:
        found = ", ".join(labelers) or "none"
        raise InvalidInputError(
            f"region agreement needs at least two labelers, but found {len(labelers)} ({found}). "
            "Ask a second person to label the same images"
        )
    shared = [(image_id, path, shapes) for image_id, path, shapes in labeled if len(shapes) >= 2]
    if not shared:
        raise InvalidInputError("no image was labeled by two labelers yet, so region agreement cannot be measured")

    scores = [_image_agreement(shapes, threshold) for _, _, shapes in shared]
    rows = [_image_row(image, score) for image, score in zip(shared, scores)]
    mean_agreement = round(float(np.mean(scores)), 6)
    result = {
        "labelers": labelers,
        "images_with_two_or_more_labels": len(shared),
        "mean_agreement": mean_agreement,
        "least_agreed": sorted(rows, key=lambda row: (row["agreement"], row["image_id"])),
        "by_labeler": [_labeler_quality(name, shared, threshold) for name in labelers],
    }
    logger.info(
        "region agreement of %d labelers on %d images at IoU %s: mean %s",
        len(labelers), len(shared), threshold, mean_agreement,
    )
    return result


def _match_prepared(first: list[_PreparedShape], second: list[_PreparedShape], threshold: float) -> Matching:
    scores = np.zeros((len(first), len(second)))
    for i, j in np.ndindex(scores.shape):
        scores[i, j] = _prepared_iou(first[i], second[j])
    # Pairs below the threshold must not steer the assignment, so they count zero.
    scores[scores < threshold] = 0.0
    rows, columns = linear_sum_assignment(scores, maximize=True)
    pairs = [(int(i), int(j), float(scores[i, j])) for i, j in zip(rows, columns) if scores[i, j] > 0.0]

    paired_first = {i for i, _, _ in pairs}
    paired_second = {j for _, j, _ in pairs}
    return Matching(
        pairs=pairs,
        unmatched_first=[i for i in range(len(first)) if i not in paired_first],
        unmatched_second=[j for j in range(len(second)) if j not in paired_second],
        class_disagreements=[(i, j) for i, j, _ in pairs if first[i].shape.class_name != second[j].shape.class_name],
    )


def _prepare(shapes: list[Shape]) -> list[_PreparedShape]:
    return [_PreparedShape(shape) for shape in shapes]


def _check_threshold(threshold: float) -> None:
    if not 0.0 < threshold <= 1.0:
        raise InvalidInputError(f"invalid IoU threshold {threshold}: expected a value in (0, 1], usually 0.5")


def _prepared_iou(first: _PreparedShape, second: _PreparedShape) -> float:
    if first.shape.kind == "box" and second.shape.kind == "box":
        return _box_iou(first.shape.geometry, second.shape.geometry)
    return _raster_iou(first, second)


def _box_iou(first: list[float], second: list[float]) -> float:
    width = min(first[2], second[2]) - max(first[0], second[0])
    height = min(first[3], second[3]) - max(first[1], second[1])
    intersection = max(width, 0.0) * max(height, 0.0)
    union = _box_area(first) + _box_area(second) - intersection
    return intersection / union if union > 0.0 else 0.0


def _box_area(box: list[float]) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _raster_iou(first: _PreparedShape, second: _PreparedShape) -> float:
    if first.extent is None or second.extent is None:
        return 0.0

    common = (
        max(first.extent[0], second.extent[0]),
        max(first.extent[1], second.extent[1]),
        min(first.extent[2], second.extent[2]),
        min(first.extent[3], second.extent[3]),
    )
    if common[0] >= common[2] or common[1] >= common[3]:
        return 0.0
    intersection = int(np.count_nonzero(_crop(first, common) & _crop(second, common)))
    union = first.pixel_count + second.pixel_count - intersection
    return intersection / union if union else 0.0


def _crop(prepared: _PreparedShape, window: _Extent) -> np.ndarray:
    column, row = prepared.extent[0], prepared.extent[1]
    return prepared.pixels[window[1] - row : window[3] - row, window[0] - column : window[2] - column]


def _rasterize(shape: Shape, extent: _Extent) -> np.ndarray:
    """Return the shape's pixels as a boolean array over ``extent``."""
    column, row, column_stop, row_stop = extent
    width, height = column_stop - column, row_stop - row
    if shape.kind == "mask":
        return shape.mask[row:row_stop, column:column_stop] != 0
    if shape.kind == "box":
        return np.ones((height, width), dtype=bool)

    # fill_polygon applies the pixel-centre rule of mask export. Pillow's ImageDraw.polygon (Pillow 13) also
    # fills the boundary pixels, so the square (0, 0)-(10, 10) would cover 11x11 pixels instead of 10x10.
    # Shifting by whole pixels keeps every pixel centre's place relative to the polygon.
    shifted = [value - (column if index % 2 == 0 else row) for index, value in enumerate(shape.geometry)]
    return fill_polygon(shifted, width, height)


def _pixel_extent(shape: Shape) -> _Extent | None:
    """Return the smallest pixel rectangle that contains the shape's pixels, or None when it has none."""
    if shape.kind == "mask":
        rows = np.flatnonzero(np.any(shape.mask, axis=1))
        columns = np.flatnonzero(np.any(shape.mask, axis=0))
        if rows.size == 0:
            return None
        return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1

    xs, ys = shape.geometry[0::2], shape.geometry[1::2]
    extent = (
        _first_centre_at(min(xs)),
        _first_centre_at(min(ys)),
        _first_centre_at(max(xs)),
        _first_centre_at(max(ys)),
    )
    return extent if extent[0] < extent[2] and extent[1] < extent[3] else None


def _first_centre_at(edge: float) -> int:
    """Return the index of the first pixel whose centre lies at or after ``edge``."""
    return math.ceil(edge - 0.5)


def _prepare_image(shapes_by_labeler: dict[str, list[Shape] | None]) -> dict[str, list[_PreparedShape]]:
    """Return the regions of the labelers who labeled the image, in labeler-name order."""
    return {name: _prepare(shapes) for name, shapes in sorted(shapes_by_labeler.items()) if shapes is not None}


def _image_agreement(shapes_by_labeler: dict[str, list[_PreparedShape]], threshold: float) -> float:
    pairs = combinations(shapes_by_labeler.values(), 2)
    return float(np.mean([_pair_agreement(first, second, threshold) for first, second in pairs]))


def _pair_agreement(first: list[_PreparedShape], second: list[_PreparedShape], threshold: float) -> float:
    if not first and not second:
        return 1.0
    matching = _match_prepared(first, second, threshold)
    same_class = len(matching.pairs) - len(matching.class_disagreements)
    return 2 * same_class / (len(first) + len(second))


def _image_row(image: tuple[int, str, dict[str, list[_PreparedShape]]], agreement: float) -> dict[str, Any]:
    image_id, path, shapes_by_labeler = image
    return {
        "image_id": image_id,
        "path": path,
        "agreement": round(agreement, 6),
        "regions": {name: len(shapes) for name, shapes in shapes_by_labeler.items()},
    }


@dataclass
class _Cluster:
    """Regions of several labelers paired with the cluster's first region, at most one per labeler."""

    members: list[_PreparedShape]

    @property
    def majority_class(self) -> str | None:
        counts = Counter(member.shape.class_name for member in self.members).most_common()
        if len(counts) > 1 and counts[0][1] == counts[1][1]:
            return None
        return counts[0][0]


def _cluster_regions(shapes_by_labeler: dict[str, list[_PreparedShape]], threshold: float) -> list[_Cluster]:
    """Cluster the labelers' regions greedily, in labeler-name order (see the module docstring)."""
    clusters: list[_Cluster] = []
    for name in sorted(shapes_by_labeler):
        shapes = shapes_by_labeler[name]
        matching = _match_prepared([cluster.members[0] for cluster in clusters], shapes, threshold)
        for cluster_index, shape_index, _ in matching.pairs:
            clusters[cluster_index].members.append(shapes[shape_index])
        clusters.extend(_Cluster([shapes[index]]) for index in matching.unmatched_second)
    return clusters


def _labeler_quality(
    name: str, images: list[tuple[int, str, dict[str, list[_PreparedShape]]]], threshold: float
) -> dict[str, Any]:
    """Return one labeler's missed and extra regions, escapes and overkills against the others' consensus."""
    totals: Counter[str] = Counter()
    for _, _, shapes_by_labeler in images:
        if name in shapes_by_labeler:
            others = {other: shapes for other, shapes in shapes_by_labeler.items() if other != name}
            totals.update(_tally_image(shapes_by_labeler[name], others, threshold))

    return {
        "labeler": name,
        "images_compared": totals["images"],
        "consensus_regions": totals["consensus_regions"],
        "regions_missed_rate": _rate(totals["missed_regions"], totals["consensus_regions"]),
        "extra_regions_rate": _rate(totals["extra_regions"], totals["judged_regions"]),
        "escape_rate": _rate(totals["escapes"], totals["defective_images"]),
        "overkill_rate": _rate(totals["overkills"], totals["good_images"]),
        "class_disagreements": totals["class_disagreements"],
    }


def _tally_image(
    own: list[_PreparedShape], others: dict[str, list[_PreparedShape]], threshold: float
) -> Counter[str]:
    """Count one labeler's outcomes on one image against the consensus of the other labelers."""
    clusters = _cluster_regions(others, threshold)
    consensus = [cluster for cluster in clusters if 2 * len(cluster.members) > len(others)]
    undecided = [cluster for cluster in clusters if 2 * len(cluster.members) == len(others)]
    # One pairing against both, so a region on an undecided cluster is not also counted as extra.
    references = consensus + undecided
    matching = _match_prepared([cluster.members[0] for cluster in references], own, threshold)
    on_undecided = sum(i >= len(consensus) for i, _, _ in matching.pairs)
    missed = sum(i < len(consensus) for i in matching.unmatched_first)
    class_disagreements = sum(
        i < len(consensus) and references[i].majority_class not in (None, own[j].shape.class_name)
        for i, j, _ in matching.pairs
    )

    defective = bool(consensus)
    good = not consensus and not undecided
    return Counter(
        images=1,
        consensus_regions=len(consensus),
        missed_regions=missed,
        judged_regions=len(own) - on_undecided,
        extra_regions=len(matching.unmatched_second),
        class_disagreements=class_disagreements,
        defective_images=int(defective),
        escapes=int(defective and not own),
        good_images=int(good),
        overkills=int(good and bool(own)),
    )


def _rate(count: int, total: int) -> float | None:
    return round(count / total, 6) if total else None
