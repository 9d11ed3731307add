"""The image -> input affine map, its inverse and the pixels it renders."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from service.core.errors import PoseError
from service.core.geometry import draft_size, parse_bbox, plan
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
