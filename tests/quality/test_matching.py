"""Region IoU, one-to-one matching and region agreement on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from defectlab.errors import InvalidInputError
from defectlab.quality.matching import (
    Shape,
    image_region_agreement,
    match_shapes,
    measure_region_agreement,
    shape_iou,
)


def box(x_min: float, y_min: float, x_max: float, y_max: float, class_name: str = "scratch") -> Shape:
    return Shape(class_name, "box", [x_min, y_min, x_max, y_max])


def polygon(*values: float, class_name: str = "scratch") -> Shape:
    return Shape(class_name, "polygon", list(values))


def mask_of(x_min: int, y_min: int, x_max: int, y_max: int, *, size: int = 40) -> Shape:
    pixels = np.zeros((size, size), dtype=np.uint8)
    pixels[y_min:y_max, x_min:x_max] = 1
    return Shape("scratch", "mask", mask=pixels)


def test_box_iou_is_exact() -> None:
    # Overlap 5x10 = 50, union 100 + 100 - 50 = 150.
    assert shape_iou(box(0, 0, 10, 10), box(5, 0, 15, 10)) == pytest.approx(50 / 150)
    # Fractional corners: overlap 1.0 x 1 = 1.0, union 1.5 + 1.5 - 1.0 = 2.0.
    assert shape_iou(box(0, 0, 1.5, 1), box(0.5, 0, 2, 1)) == pytest.approx(0.5)


def test_triangle_against_box_counts_pixel_centres() -> None:
    # Pixel (r, c) is inside x + y < 10 when (c + 0.5) + (r + 0.5) < 10, that is c + r <= 8.
    # That gives 9 + 8 + ... + 1 = 45 pixels, all inside the box's 100, so IoU = 45 / 100.
    assert shape_iou(polygon(0, 0, 10, 0, 0, 10), box(0, 0, 10, 10)) == pytest.approx(0.45)


def test_square_polygon_matches_box_pixels() -> None:
    square = polygon(0, 0, 10, 0, 10, 10, 0, 10)
    assert shape_iou(square, box(0, 0, 10, 10)) == 1.0
    # Same as the exact box case: 50 / 150.
    assert shape_iou(square, box(5, 0, 15, 10)) == pytest.approx(50 / 150)


def test_mask_against_box() -> None:
    # Mask rows and columns 0..9 (100 pixels), box 5..14 (100 pixels): overlap 5x5 = 25, union 175.
    assert shape_iou(mask_of(0, 0, 10, 10), box(5, 5, 15, 15)) == pytest.approx(25 / 175)


def test_rasterized_boxes_agree_with_exact_iou() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        first = sorted(rng.integers(0, 40, size=2)), sorted(rng.integers(0, 40, size=2))
        second = sorted(rng.integers(0, 40, size=2)), sorted(rng.integers(0, 40, size=2))
        (x0, x1), (y0, y1) = first
        (u0, u1), (v0, v1) = second
        exact = shape_iou(box(x0, y0, x1, y1), box(u0, v0, u1, v1))
        assert shape_iou(box(x0, y0, x1, y1), mask_of(u0, v0, u1, v1)) == pytest.approx(exact)
        assert shape_iou(polygon(x0, y0, x1, y0, x1, y1, x0, y1), box(u0, v0, u1, v1)) == pytest.approx(exact)


def test_far_regions_on_large_image() -> None:
    # The triangle case moved to (7900, 7900): the pixel window follows the regions.
    shifted = polygon(7900, 7900, 7910, 7900, 7900, 7910)
    assert shape_iou(shifted, box(7900, 7900, 7910, 7910)) == pytest.approx(0.45)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (box(0, 0, 10, 10), box(20, 20, 30, 30)),
        (box(0, 0, 10, 10), box(10, 0, 20, 10)),
        (polygon(0, 0, 10, 0, 10, 10), box(20, 0, 30, 10)),
        (mask_of(0, 0, 5, 5), polygon(10, 10, 20, 10, 20, 20)),
        (Shape("scratch", "mask", mask=np.zeros((8, 8), dtype=bool)), box(0, 0, 8, 8)),
        (box(3, 3, 3, 9), polygon(0, 0, 10, 0, 10, 10)),
    ],
    ids=["disjoint boxes", "touching boxes", "disjoint polygon", "mask and polygon", "empty mask", "zero-width box"],
)
def test_iou_without_common_pixels_is_zero(first: Shape, second: Shape) -> None:
    assert shape_iou(first, second) == 0.0


def test_matching_beats_greedy_decoy() -> None:
    # Along x (all boxes 10 high): A=[3,13], B=[7,17], X=[4,14], Y=[0,10].
    # IoU A-X = 9/11, A-Y = 7/13, B-X = 7/13, B-Y = 3/17 (below 0.5).
    # Greedy takes A-X first and leaves B-Y unpaired. The best total pairs A-Y and B-X: 14/13 > 9/11.
    first = [box(3, 0, 13, 10), box(7, 0, 17, 10)]
    second = [box(4, 0, 14, 10), box(0, 0, 10, 10)]
    matching = match_shapes(first, second)
    assert [(i, j) for i, j, _ in matching.pairs] == [(0, 1), (1, 0)]
    assert [iou for _, _, iou in matching.pairs] == [pytest.approx(7 / 13), pytest.approx(7 / 13)]
    assert matching.unmatched_first == []
    assert matching.unmatched_second == []


def test_matching_reports_class_disagreement() -> None:
    matching = match_shapes([box(0, 0, 10, 10, "scratch"), box(20, 0, 30, 10, "dent")],
                            [box(1, 0, 11, 10, "dent"), box(20, 0, 30, 10, "dent")])
    assert [(i, j) for i, j, _ in matching.pairs] == [(0, 0), (1, 1)]
    assert matching.class_disagreements == [(0, 0)]


def test_matching_leaves_weak_overlap_unpaired() -> None:
    # IoU 50/150 = 1/3 is below 0.5 but above 0.3.
    first, second = [box(0, 0, 10, 10)], [box(5, 0, 15, 10)]
    weak = match_shapes(first, second)
    assert weak.pairs == []
    assert weak.unmatched_first == [0]
    assert weak.unmatched_second == [0]
    assert len(match_shapes(first, second, threshold=0.3).pairs) == 1


def test_matching_empty_lists() -> None:
    assert match_shapes([], []).pairs == []
    one_sided = match_shapes([box(0, 0, 10, 10)], [])
    assert one_sided.unmatched_first == [0]
    assert one_sided.unmatched_second == []


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.5])
def test_matching_rejects_invalid_threshold(threshold: float) -> None:
    with pytest.raises(InvalidInputError, match="invalid IoU threshold"):
        match_shapes([], [], threshold=threshold)


def test_image_agreement_of_two_labelers() -> None:
    # One same-class pair among 2 + 1 regions: 2 * 1 / 3.
    score = image_region_agreement({"ana": [box(0, 0, 10, 10), box(30, 30, 40, 40)], "ben": [box(1, 1, 10, 10)]})
    assert score == pytest.approx(2 / 3)


def test_image_agreement_of_three_labelers() -> None:
    # ana-ben score 2 * 1 / 2 = 1, ana-cem and ben-cem 2 * 0 / 1 = 0, so the mean is 1/3.
    score = image_region_agreement({"ana": [box(0, 0, 10, 10)], "ben": [box(0, 0, 10, 10)], "cem": []})
    assert score == pytest.approx(1 / 3)


def test_image_agreement_counts_class_disagreement() -> None:
    # The regions pair up, but with different classes: 2 * 0 / 2.
    assert image_region_agreement({"ana": [box(0, 0, 10, 10, "scratch")], "ben": [box(0, 0, 10, 10, "dent")]}) == 0.0


def test_image_agreement_on_empty_image() -> None:
    assert image_region_agreement({"ana": [], "ben": []}) == 1.0
    assert image_region_agreement({"ana": [], "ben": [], "cem": None}) == 1.0


def test_image_agreement_of_one_labeler_is_none() -> None:
    assert image_region_agreement({"ana": [box(0, 0, 10, 10)]}) is None
    assert image_region_agreement({"ana": [box(0, 0, 10, 10)], "ben": None}) is None
    assert image_region_agreement({}) is None


def test_labeler_missing_30_percent_of_regions() -> None:
    # Ten images with one defect each and five good images. ana and cem draw every defect
    # (cem one pixel off), ben misses three defects.
    rng = np.random.default_rng(0)
    corners = rng.integers(0, 80, size=(10, 2))
    missed = {int(index) for index in rng.choice(10, size=3, replace=False)}
    images = []
    for index, (x, y) in enumerate(corners):
        defect = [float(x), float(y), float(x) + 20, float(y) + 20]
        shifted = [value + 1 for value in defect]
        regions = {"ana": [box(*defect)], "ben": [] if index in missed else [box(*shifted)], "cem": [box(*shifted)]}
        images.append((index + 1, f"defect/{index}.png", regions))
    images += [(11 + index, f"good/{index}.png", {"ana": [], "ben": [], "cem": []}) for index in range(5)]

    result = measure_region_agreement(images)
    by_name = {row["labeler"]: row for row in result["by_labeler"]}
    # ben against ana and cem: 3 of 10 consensus regions missed, and 3 of 10 defective images left empty.
    assert by_name["ben"]["consensus_regions"] == 10
    assert by_name["ben"]["regions_missed_rate"] == 0.3
    assert by_name["ben"]["escape_rate"] == 0.3
    assert by_name["ben"]["extra_regions_rate"] == 0.0
    assert by_name["ben"]["overkill_rate"] == 0.0
    # ana against ben and cem: the 3 regions only cem drew are undecided (1 of 2), not consensus.
    assert by_name["ana"]["consensus_regions"] == 7
    assert by_name["ana"]["regions_missed_rate"] == 0.0
    assert by_name["ana"]["extra_regions_rate"] == 0.0
    assert by_name["ana"]["escape_rate"] == 0.0
    assert by_name["ana"]["overkill_rate"] == 0.0
    assert by_name["ana"]["images_compared"] == 15
    assert by_name["cem"]["regions_missed_rate"] == 0.0
    assert by_name["cem"]["escape_rate"] == 0.0
    # Per defect image ben missed: ana-ben 0, ana-cem 1 (IoU 361/439), ben-cem 0, mean 1/3.
    assert result["least_agreed"][0]["agreement"] == 0.333333
    assert result["least_agreed"][0]["regions"] == {"ana": 1, "ben": 0, "cem": 1}
    # (7 images at 1 + 3 at 1/3 + 5 empty images at 1) / 15 = 13 / 15.
    assert result["mean_agreement"] == 0.866667


def test_extra_regions_and_overkill_of_two_labelers() -> None:
    # Image 1: ana [A], ben [A', B]. Image 2: ana nothing, ben [C].
    images = [
        (1, "1.png", {"ana": [box(0, 0, 10, 10)], "ben": [box(1, 0, 11, 10), box(30, 30, 40, 40)]}),
        (2, "2.png", {"ana": [], "ben": [box(5, 5, 15, 15)]}),
    ]
    result = measure_region_agreement(images)
    ana, ben = result["by_labeler"]
    # ben against ana: the consensus is A on image 1, so B and C are extra (2 of 3). Image 2 is good but drawn on.
    assert ben["regions_missed_rate"] == 0.0
    assert ben["extra_regions_rate"] == 0.666667
    assert ben["escape_rate"] == 0.0
    assert ben["overkill_rate"] == 1.0
    # ana against ben: the consensus is A', B and C. ana missed B and C (2 of 3) and left image 2 empty (1 of 2).
    assert ana["regions_missed_rate"] == 0.666667
    assert ana["extra_regions_rate"] == 0.0
    assert ana["escape_rate"] == 0.5
    assert ana["overkill_rate"] is None
    # Image 1 scores 2 * 1 / 3 and image 2 scores 2 * 0 / 1, so the mean is 1/3.
    assert result["mean_agreement"] == 0.333333
    assert [row["image_id"] for row in result["least_agreed"]] == [2, 1]
    assert result["least_agreed"][0] == {"image_id": 2, "path": "2.png", "agreement": 0.0,
                                         "regions": {"ana": 0, "ben": 1}}


def test_minority_region_of_four_labelers() -> None:
    # All four draw R, and only dan draws E. For dan the others are 3, so R (3 of 3) is consensus and E is extra.
    # For ana the others are ben, cem and dan: E is drawn by 1 of 3, a minority, so it is no consensus region.
    region, extra = box(0, 0, 10, 10), box(30, 30, 40, 40)
    images = [(1, "1.png", {"ana": [region], "ben": [region], "cem": [region], "dan": [region, extra]})]
    result = measure_region_agreement(images)
    by_name = {row["labeler"]: row for row in result["by_labeler"]}
    assert by_name["dan"]["consensus_regions"] == 1
    assert by_name["dan"]["regions_missed_rate"] == 0.0
    assert by_name["dan"]["extra_regions_rate"] == 0.5
    assert by_name["ana"]["consensus_regions"] == 1
    assert by_name["ana"]["regions_missed_rate"] == 0.0
    assert by_name["ana"]["extra_regions_rate"] == 0.0
    # Pairs among ana, ben and cem score 1, and dan against each of them 2 * 1 / 3. (3 + 2) / 6 = 5/6.
    assert result["mean_agreement"] == 0.833333


def test_class_disagreement_against_consensus() -> None:
    # ben and cem call the region a dent, ana a scratch. Each pair of regions matches.
    images = [(1, "1.png", {"ana": [box(0, 0, 10, 10, "scratch")], "ben": [box(0, 0, 10, 10, "dent")],
                            "cem": [box(0, 0, 10, 10, "dent")]})]
    by_name = {row["labeler"]: row for row in measure_region_agreement(images)["by_labeler"]}
    assert by_name["ana"]["class_disagreements"] == 1
    assert by_name["ana"]["regions_missed_rate"] == 0.0
    # ben's others are ana (scratch) and cem (dent): a tie, so no consensus class to disagree with.
    assert by_name["ben"]["class_disagreements"] == 0


def test_labeler_without_shared_images_gets_no_rates() -> None:
    images = [
        (1, "1.png", {"ana": [box(0, 0, 10, 10)], "ben": [box(0, 0, 10, 10)], "cem": None}),
        (2, "2.png", {"ana": None, "ben": None, "cem": [box(0, 0, 10, 10)]}),
    ]
    result = measure_region_agreement(images)
    cem = result["by_labeler"][2]
    assert result["labelers"] == ["ana", "ben", "cem"]
    assert result["images_with_two_or_more_labels"] == 1
    assert cem["images_compared"] == 0
    assert cem["regions_missed_rate"] is None
    assert cem["escape_rate"] is None
    assert cem["overkill_rate"] is None


def test_one_labeler_finished_gets_clear_message() -> None:
    images = [(1, "1.png", {"ana": [box(0, 0, 10, 10)], "ben": None}), (2, "2.png", {"ana": [], "ben": None})]
    with pytest.raises(InvalidInputError, match="at least two labelers, but found 1 \\(ana\\)"):
        measure_region_agreement(images)


def test_no_images_gets_clear_message() -> None:
    with pytest.raises(InvalidInputError, match="at least two labelers, but found 0 \\(none\\)"):
        measure_region_agreement([])


def test_no_shared_image_gets_clear_message() -> None:
    images = [(1, "1.png", {"ana": [], "ben": None}), (2, "2.png", {"ana": None, "ben": [box(0, 0, 10, 10)]})]
    with pytest.raises(InvalidInputError, match="no image was labeled by two labelers"):
        measure_region_agreement(images)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("scratch", "circle", [0, 0, 1, 1]), "invalid region kind 'circle'"),
        (("scratch", "box", [10, 0, 0, 10]), "x_min <= x_max"),
        (("scratch", "box", [0, 0, 10]), "x_min <= x_max"),
        (("scratch", "box", [0, 0, float("nan"), 10]), "not a finite number"),
        (("scratch", "polygon", [0, 0, 10, 0, 10]), "at least 3 points"),
        (("scratch", "polygon", None), "at least 3 points"),
        (("scratch", "mask", None, np.zeros(5)), "2-D array"),
        (("scratch", "mask"), "2-D array"),
        (("ok", "box", [0, 0, 10, 10]), "invalid region class 'ok'"),
    ],
)
def test_shape_rejects_invalid_input(arguments: tuple, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Shape(*arguments)
