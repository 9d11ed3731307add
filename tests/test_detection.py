"""The detector's decoding in the core (``pose.detection``) against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pose.detection import (
    DETECTOR_KEY,
    DetectionOptions,
    DetectorContractError,
    DetectorSpec,
    decode_people,
    distances_to_boxes,
    grid_points,
    iou,
    non_maximum_suppression,
    overlaps,
)
from pose.geometry import plan

SPEC = DetectorSpec((64, 64), (16, 32), bins=4)  # 4x4 + 2x2 = 20 points


def test_grid_points_run_stride_by_stride_row_by_row() -> None:
    points = grid_points(SPEC)
    assert points.shape == (20, 3) and SPEC.num_points == 20
    assert points[:5].tolist() == [[0, 0, 16], [16, 0, 16], [32, 0, 16], [48, 0, 16], [0, 16, 16]]
    assert points[16:].tolist() == [[0, 0, 32], [32, 0, 32], [0, 32, 32], [32, 32, 32]]


def test_distances_are_the_expectation_of_each_sides_softmax_times_the_stride() -> None:
    logits = np.zeros((2, 4, 4))  # uniform over bins 0..3: expectation 1.5
    logits[1] = -1e9
    logits[1, :, 2] = 0.0  # all mass on bin 2 for every side
    points = np.array([[16.0, 32.0, 16.0], [32.0, 32.0, 32.0]])
    boxes = distances_to_boxes(logits, points)
    np.testing.assert_allclose(boxes[0], [16 - 24, 32 - 24, 16 + 24, 32 + 24])
    np.testing.assert_allclose(boxes[1], [32 - 64, 32 - 64, 32 + 64, 32 + 64])
    two = np.log(np.array([1.0, 3.0]))  # p = (1/4, 3/4) over bins 0, 1: expectation 0.75
    one_side = np.tile(two, (1, 4, 1))
    np.testing.assert_allclose(distances_to_boxes(one_side, np.array([[0.0, 0.0, 8.0]]))[0], [-6, -6, 6, 6])


def test_iou_of_hand_drawn_boxes() -> None:
    box = np.array([0.0, 0.0, 10.0, 10.0])
    others = np.array([[5.0, 0.0, 15.0, 10.0], [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [2, 2, 4, 4]])
    np.testing.assert_allclose(iou(box, others), [50 / 150, 1.0, 0.0, 4 / 100])


def test_nms_keeps_the_best_of_each_overlapping_group_in_score_order() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [30, 30, 40, 40], [0, 0, 10, 10.0]])
    scores = np.array([0.8, 0.9, 0.7, 0.8])
    # box 1 wins its group (IoU 0.82 with 0 and 3), box 2 stands alone
    assert non_maximum_suppression(boxes, scores, 0.6, 10) == [1, 2]
    assert non_maximum_suppression(boxes, scores, 0.6, 1) == [1]
    assert non_maximum_suppression(boxes, scores, 0.9, 10) == [1, 0, 2]  # 0 and 3 are equal: the first is kept
    assert non_maximum_suppression(boxes[:0], scores[:0], 0.6, 10) == []


def test_a_box_inside_a_better_one_is_dropped_only_past_max_inside() -> None:
    # a body 0..20 x 0..40 (score 0.9), its torso 4..16 x 4..20 (0.5: IoU 192/800 = 0.24, all of it inside), and a
    # neighbour 15..35 x 0..40 (0.8: a quarter of it inside the body)
    boxes = np.array([[0, 0, 20, 40], [4, 4, 16, 20], [15, 0, 35, 40.0]])
    scores = np.array([0.9, 0.5, 0.8])
    np.testing.assert_allclose(overlaps(boxes[0], boxes[1:]), [[192 / 800, 200 / 1400], [1.0, 0.25]])
    assert non_maximum_suppression(boxes, scores, 0.6, 10) == [0, 2, 1]  # off by default
    assert non_maximum_suppression(boxes, scores, 0.6, 10, max_inside=0.9) == [0, 2]
    assert non_maximum_suppression(boxes, scores, 0.6, 10, max_inside=0.2) == [0]


def _outputs(strong: dict[int, tuple[float, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Scores and logits with the points of ``strong`` (point -> (score, bin of every side)) set, the rest 0."""
    scores = np.zeros(SPEC.num_points, np.float32)
    logits = np.full((SPEC.num_points, 4, SPEC.bins), -1e9, np.float32)
    logits[:, :, 0] = 0.0
    for point, (score, side) in strong.items():
        scores[point] = score
        logits[point] = -1e9
        logits[point, :, side] = 0.0
    return scores, logits


def test_people_come_back_to_image_pixels_through_the_letterbox() -> None:
    size = (200, 100)  # letterboxed into 64x64: scale 0.32, 16 input rows of padding above and below
    to_input = plan(size, SPEC.input_size, "letterbox")
    point = 5  # (16, 16) at stride 16; every side at bin 1: the input box 0..32 x 0..32
    scores, logits = _outputs({point: (0.9, 1)})
    [person] = decode_people(scores, logits, SPEC, to_input, size, DetectionOptions(min_score=0.5))
    assert person.score == pytest.approx(0.9)
    scale = 64 / 200
    x0, y0 = 0 / scale, (0 - 16) / scale  # input pixel edges -> image pixel edges (the letterbox's inverse)
    x1, y1 = 32 / scale, (32 - 16) / scale
    expected = (x0, max(y0, 0.0), x1 - x0, y1 - max(y0, 0.0))  # clipped to the image
    assert person.box == pytest.approx(expected)


def test_people_are_ordered_by_score_times_area_and_capped() -> None:
    size = (64, 64)
    to_input = plan(size, SPEC.input_size, "letterbox")
    # point 0 (0, 0)/16: bin 1 -> a 32x32 box clipped to 16x16; point 10 (32, 32)/16: bin 2 -> 64x64 clipped to 32x32
    scores, logits = _outputs({0: (0.9, 1), 10: (0.6, 2), 19: (0.2, 1)})
    people = decode_people(scores, logits, SPEC, to_input, size, DetectionOptions(min_score=0.3, nms_iou=0.6))
    assert [round(p.score, 1) for p in people] == [0.6, 0.9]  # 0.6 x 1024 before 0.9 x 256; 0.2 is below the floor
    assert people[0].box == pytest.approx((0.0, 0.0, 64.0, 64.0))
    capped = decode_people(scores, logits, SPEC, to_input, size, DetectionOptions(min_score=0.3, max_people=1))
    assert [round(p.score, 1) for p in capped] == [0.9]  # the cap keeps the best scores, then orders them


def test_the_most_prominent_person_has_a_lower_floor_than_the_rest() -> None:
    size = (64, 64)
    to_input = plan(size, SPEC.input_size, "letterbox")
    # point 10: a weak 64x64 person (0.25 x 1024 = 256 > 0.9 x 256 of point 0), point 19 (48, 48)/16: a weak 32x32 one
    scores, logits = _outputs({0: (0.9, 1), 10: (0.25, 2), 19: (0.25, 1)})
    default = decode_people(scores, logits, SPEC, to_input, size, DetectionOptions(min_score=0.3, first_min_score=0.2))
    assert [(round(p.score, 2), p.area) for p in default] == [(0.25, 64 * 64), (0.9, 16 * 16)]  # not the small 0.25
    strict = decode_people(scores, logits, SPEC, to_input, size, DetectionOptions(min_score=0.3, first_min_score=0.3))
    assert [round(p.score, 2) for p in strict] == [0.9]
    with pytest.raises(ValueError, match="above min_score"):
        DetectionOptions(min_score=0.3, first_min_score=0.4)


def test_no_point_above_the_floor_is_nobody() -> None:
    scores, logits = _outputs({})
    to_input = plan((64, 64), SPEC.input_size, "letterbox")
    assert decode_people(scores, logits, SPEC, to_input, (64, 64), DetectionOptions()) == []


def test_outputs_of_the_wrong_shape_are_a_contract_error() -> None:
    scores, logits = _outputs({})
    to_input = plan((64, 64), SPEC.input_size, "letterbox")
    with pytest.raises(DetectorContractError, match="20 points of 4 bins"):
        decode_people(scores[:-1], logits, SPEC, to_input, (64, 64), DetectionOptions())


def test_spec_round_trips_and_refuses_bad_metadata() -> None:
    spec = DetectorSpec((416, 416), (8, 16, 32), 11, {"package": "x"})
    assert DetectorSpec.from_props(spec.to_props()) == spec
    assert spec.num_points == 52 * 52 + 26 * 26 + 13 * 13
    with pytest.raises(DetectorContractError, match="not a person detector"):
        DetectorSpec.from_props({"keypoint_names": "[]"})
    with pytest.raises(DetectorContractError, match="malformed"):
        DetectorSpec.from_props({DETECTOR_KEY: '{"input_size": [416], "strides": [8], "bins": 11}'})
    with pytest.raises(DetectorContractError, match="divide"):
        DetectorSpec((100, 100), (8,), 11)
    with pytest.raises(DetectorContractError, match="2 bins"):
        DetectorSpec((64, 64), (8,), 1)
    options = DetectionOptions()  # the floors chosen on the tunable splits (pose.detection)
    assert math.isclose(options.min_score, 0.3) and math.isclose(options.first_min_score, 0.15)
