"""The one geometry: the service's maps and the training crops, their inverses, and the pixels they render."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from pose.errors import PoseError
from pose.geometry import Affine, draft_size, parse_bbox, plan
from service.imaging.resample import resample_into
from tests.helpers.answers import http_answer

INPUT = (256, 256)


def rendered(image: Image.Image, affine, reduction: float = 1.0, full_size=None) -> np.ndarray:
    out = np.zeros((3, *INPUT), np.float32)
    resample_into(image, affine, out, reduction, full_size)
    return out


def test_letterbox_centres_the_image_with_equal_padding():
    a = plan((640, 320), INPUT, "letterbox")
    assert a.sx == a.sy == pytest.approx(0.4)
    # image edges -0.5 / 319.5 (rows) land 64 input pixels from the top and bottom edges
    top, bottom = a.to_input(np.array([[0, -0.5], [0, 319.5]]))[:, 1]
    assert top + 0.5 == pytest.approx(64) and 255.5 - bottom == pytest.approx(64)
    left, right = a.to_input(np.array([[-0.5, 0], [639.5, 0]]))[:, 0]
    assert left == pytest.approx(-0.5) and right == pytest.approx(255.5)


def test_stretch_fills_the_input():
    a = plan((100, 400), INPUT, "stretch")
    corners = a.to_input(np.array([[-0.5, -0.5], [99.5, 399.5]]))
    np.testing.assert_allclose(corners, [[-0.5, -0.5], [255.5, 255.5]])


def test_bbox_is_grown_by_a_quarter_about_its_centre():
    a = plan((640, 480), INPUT, "letterbox", (100, 50, 80, 160))
    centre = a.to_input(np.array([[100 + 40 - 0.5, 50 + 80 - 0.5]]))[0]
    np.testing.assert_allclose(centre, [127.5, 127.5])
    assert a.sy == pytest.approx(256 / (1.25 * 160))  # the taller side fills the input
    stretched = plan((640, 480), INPUT, "stretch", (100, 50, 80, 160))
    assert (stretched.sx, stretched.sy) == pytest.approx((256 / 100, 256 / 200))


@pytest.mark.parametrize("resize", ["letterbox", "stretch"])
def test_inverse_is_exact(resize):
    a = plan((1234, 567), INPUT, resize, (10.5, 20.25, 300.0, 400.0))
    points = np.random.default_rng(0).uniform(-10, 300, (50, 2))
    np.testing.assert_allclose(a.to_image(a.to_input(points)), points, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("bbox", "size"),
    [
        ((0, 0, 0, 10), (50, 50)),
        ((60, 0, 10, 10), (50, 50)),
        ((0, -20, 10, 20), (50, 50)),
        ((0, 0, 1e308, 1e308), (50, 40)),  # finite but absurd
        ((0, 0, 200.001, 10), (50, 40)),  # just over 4x the longer side
        ((0, 0, 10, 201), (50, 40)),
        ((-1e300, 0, 10, 10), (50, 40)),
        ((0, 0, math.nan, 10), (50, 40)),
        ((0, math.inf, 10, 10), (50, 40)),
        ((-math.inf, 0, 10, 10), (50, 40)),
    ],
)
def test_bad_boxes_are_422(bbox, size):
    with pytest.raises(PoseError) as caught:
        plan(size, INPUT, "letterbox", bbox)
    assert http_answer(caught.value)[0] == 422


@pytest.mark.parametrize(
    "text", ["1,2,3", "a,b,c,d", "1,2,inf,4", "1,2,0,4", "1,2,3,-4", "nan,2,3,4", "1,-inf,3,4", "1,2,3,1e999"]
)
def test_parse_bbox_rejects(text):
    with pytest.raises(PoseError):
        parse_bbox(text)


def test_box_up_to_four_times_the_longer_side_is_accepted():
    a = plan((50, 40), INPUT, "letterbox", (-75, -80, 200, 200))
    assert math.isclose(a.sx, INPUT[1] / (200 * 1.25))


def test_parse_bbox():
    assert parse_bbox(" 1, 2.5,3,4 ") == (1.0, 2.5, 3.0, 4.0)
    assert parse_bbox(None) is None and parse_bbox("") is None


def test_render_puts_each_pixel_where_the_map_says():
    image = Image.new("RGB", (64, 32), (0, 0, 0))
    image.putpixel((10, 20), (255, 255, 255))
    a = plan(image.size, INPUT, "letterbox")  # scale 4, content rows 64..191
    out = rendered(image, a)
    x, y = a.to_input(np.array([[10.0, 20.0]]))[0]
    weights = out[0] / out[0].sum()
    rows, cols = np.indices(weights.shape)
    assert ((weights * cols).sum(), (weights * rows).sum()) == pytest.approx((x, y), abs=1e-3)  # blob centroid
    assert out.shape == (3, 256, 256) and out.dtype == np.float32
    # letterbox padding is zero: rows above and below the 128-row content band
    assert out[:, :64].max() == 0 and out[:, 192:].max() == 0


def test_render_values_are_channel_first_in_0_1():
    image = Image.new("RGB", (8, 8), (255, 128, 0))
    out = rendered(image, plan(image.size, INPUT, "stretch"))
    np.testing.assert_allclose(out[:, 100, 100], [1.0, 128 / 255, 0.0], atol=1e-6)


def test_bbox_outside_parts_are_padding():
    image = Image.new("RGB", (100, 100), (255, 255, 255))
    out = rendered(image, plan(image.size, INPUT, "letterbox", (-50, -50, 100, 100)))
    a = plan(image.size, INPUT, "letterbox", (-50, -50, 100, 100))
    first = a.to_input(np.array([[-0.5, -0.5]]))[0] + 0.5  # input edge where the image starts
    assert out[0, : int(first[1]) - 1].max() == 0 and out[0, :, : int(first[0]) - 1].max() == 0
    assert out[0, int(first[1]) + 1 :, int(first[0]) + 1 :].min() == 1.0


def test_reduced_image_renders_like_the_full_one():
    smooth = Image.linear_gradient("L").resize((800, 640)).convert("RGB")
    a = plan(smooth.size, INPUT, "letterbox")
    reduced = smooth.reduce(4)  # box average: the same pixel-edge geometry as a JPEG DCT draft
    np.testing.assert_allclose(rendered(reduced, a, 4.0, smooth.size), rendered(smooth, a), atol=0.01)
    assert draft_size(smooth.size, a) == (256, 205)


@pytest.mark.parametrize("rotation,flip", [(0.0, False), (23.0, False), (-37.5, True), (180.0, True)])
def test_training_crop_inverse_is_exact(rotation: float, flip: bool) -> None:
    crop = Affine.crop((311.7, 95.2), 143.0, (256, 192), rotation, flip)
    pts = np.random.default_rng(0).uniform(-50, 400, (20, 2))
    np.testing.assert_allclose(crop.to_image(crop.to_input(pts)), pts, atol=1e-9)
    np.testing.assert_allclose(crop.inverse().to_input(crop.to_input(pts)), pts, atol=1e-9)
    np.testing.assert_allclose(crop.inverse().inverse().matrix, crop.matrix, atol=1e-12)
    assert Affine.from_matrix(crop.matrix) == crop


def test_training_crop_box_fills_the_crop_under_the_pixel_centre_convention() -> None:
    # a 64-pixel box around (100, 50) maps its edges onto the crop's edges at -0.5 and 255.5
    crop = Affine.crop((100.0, 50.0), 64.0, (256, 256))
    corners = np.array([[100 - 32, 50 - 32], [100 + 32, 50 + 32], [100, 50]], float)
    np.testing.assert_allclose(crop.to_input(corners), [[-0.5, -0.5], [255.5, 255.5], [127.5, 127.5]])


def test_rotation_turns_content_counter_clockwise_and_flip_mirrors() -> None:
    turned = Affine.crop((0.0, 0.0), 256.0, INPUT, rotation=90.0)
    right_of_centre = turned.to_input(np.array([10.0, 0.0]))
    np.testing.assert_allclose(right_of_centre, [127.5, 127.5 - 10.0], atol=1e-9)  # now above the centre
    plain = Affine.crop((40.0, 60.0), 80.0, INPUT, rotation=17.0)
    flipped = Affine.crop((40.0, 60.0), 80.0, INPUT, rotation=17.0, flip=True)
    p = np.array([[33.0, 71.0], [50.0, 20.0]])
    a, b = plain.to_input(p), flipped.to_input(p)
    np.testing.assert_allclose(b[:, 0], 255 - a[:, 0], atol=1e-9)
    np.testing.assert_allclose(b[:, 1], a[:, 1], atol=1e-9)


def test_the_service_map_is_a_centred_crop_without_rotation():
    """A box plan is the same map as a training crop of the grown box's longer side (letterbox, no turn)."""
    a = plan((640, 480), INPUT, "letterbox", (100.0, 40.0, 200.0, 360.0))
    side = 360.0 * 1.25
    crop = Affine.crop((100.0 + 100.0 - 0.5, 40.0 + 180.0 - 0.5), side, INPUT)
    assert a.axis_aligned and crop.axis_aligned
    np.testing.assert_allclose(a.matrix, crop.matrix, atol=1e-12)


def test_resampling_refuses_a_turned_map():
    image = Image.new("RGB", (40, 30))
    out = np.zeros((3, *INPUT), np.float32)
    with pytest.raises(ValueError):
        resample_into(image, Affine.crop((20.0, 15.0), 30.0, INPUT, rotation=10.0), out)
