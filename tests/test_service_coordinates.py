"""Exact keypoint coordinates end to end: real server, real ONNX Runtime, models with known heatmaps.

The expected image coordinates come from the documented formulas, written out here independently
of ``pose.geometry``: heatmap h -> input (h + 0.5) * stride - 0.5 -> image by inverting the
letterbox / stretch / grown-bbox map. Tolerances: 0.1 heatmap pixel (times the image pixels per
heatmap pixel) with ``refine=dark``, 0.3 with ``quarter``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from pose.layout import MPII
from tests.helpers.images import blob_image, encode, gray_image, with_orientation
from tests.helpers.server import ServiceProcess

INPUT = 256
STRIDE = 4
TOLERANCE = {"dark": 0.1, "quarter": 0.3}


def expected_keypoints(
    peaks_hm: np.ndarray,
    size: tuple[int, int],
    resize: str = "letterbox",
    bbox: tuple[float, float, float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Image (x, y) of heatmap peaks, and the image pixels per heatmap pixel on each axis."""
    width, height = size
    x_in = (peaks_hm + 0.5) * STRIDE - 0.5
    if bbox is None and resize == "letterbox":
        # scale the longer side to the input, pad both sides equally
        s = INPUT / max(width, height)
        pad = np.array([(INPUT - s * width) / 2, (INPUT - s * height) / 2])
        scale = np.array([s, s])
        return (x_in + 0.5 - pad) / scale - 0.5, STRIDE / scale
    if bbox is None:  # stretch: the image edges [-0.5, W - 0.5] onto the input edges [-0.5, 255.5]
        scale = np.array([INPUT / width, INPUT / height])
        return (x_in + 0.5) / scale - 0.5, STRIDE / scale
    x, y, w, h = bbox
    centre = np.array([x + w / 2, y + h / 2])  # box centre in pixel-edge coordinates
    grown = np.array([1.25 * w, 1.25 * h])
    scale = INPUT / grown
    if resize == "letterbox":
        scale = np.full(2, scale.min())
    # input centre (edge coordinate 128) shows the box centre
    return (x_in + 0.5 - INPUT / 2) / scale + centre - 0.5, STRIDE / scale


def keypoint_array(body: dict) -> tuple[np.ndarray, np.ndarray]:
    points = np.array([[k["x"], k["y"]] for k in body["keypoints"]])
    scores = np.array([k["score"] for k in body["keypoints"]])
    return points, scores


def assert_close(body: dict, expected: np.ndarray, per_hm_px: np.ndarray, refine: str) -> None:
    points, _ = keypoint_array(body)
    error_hm = np.abs(points - expected) / per_hm_px
    assert error_hm.max() < TOLERANCE[refine], f"max error {error_hm.max():.3f} heatmap px:\n{points - expected}"


SIZES = [(640, 425), (425, 640), (256, 256), (1000, 300), (120, 380), (37, 23)]


@pytest.mark.parametrize("refine", ["dark", "quarter"])
@pytest.mark.parametrize("resize", ["letterbox", "stretch"])
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_whole_image(constant_server, constant_peaks, size, resize, refine):
    with constant_server.client() as client:
        r = client.post(
            "/predict",
            params={"resize": resize, "refine": refine},
            files={"file": ("x.png", encode(gray_image(*size)), "image/png")},
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"] == {"width": size[0], "height": size[1]}
    assert [k["name"] for k in body["keypoints"]] == list(MPII.names)
    expected, per_px = expected_keypoints(constant_peaks, size, resize)
    assert_close(body, expected, per_px, refine)
    assert all(abs(k["score"] - 1.0) < 0.05 for k in body["keypoints"])


BOXES = [
    ((640, 425), (100, 50, 200, 300)),
    ((640, 425), (-40, -30, 260, 180)),  # partly outside: padded
    ((640, 425), (600, 400, 80, 60)),  # bottom-right corner
    ((300, 900), (10.5, 200.25, 100.5, 350.75)),
]


@pytest.mark.parametrize("resize", ["letterbox", "stretch"])
@pytest.mark.parametrize(("size", "bbox"), BOXES)
def test_bbox(constant_server, constant_peaks, size, bbox, resize):
    with constant_server.client() as client:
        r = client.post(
            "/predict",
            params={"resize": resize, "refine": "dark", "bbox": ",".join(map(str, bbox))},
            content=encode(gray_image(*size), "JPEG"),
            headers={"content-type": "image/jpeg"},
        )
    assert r.status_code == 200, r.text
    expected, per_px = expected_keypoints(constant_peaks, size, resize, bbox)
    assert_close(r.json(), expected, per_px, "dark")


def test_flip_test_keeps_a_mirror_symmetric_answer(constant_server):
    # constant_peaks are mirror-symmetric with the MPII pairs swapped: a correct flip test changes nothing,
    # a wrong pair swap or a half-pixel mirror error would split or move the peaks.
    image = encode(gray_image(500, 300))
    with constant_server.client() as client:
        plain = client.post("/predict", params={"refine": "dark"}, files={"file": ("a.png", image)}).json()
        flipped = client.post("/predict", params={"refine": "dark", "flip": "true"}, files={"file": ("a.png", image)})
    assert flipped.status_code == 200, flipped.text
    p0, s0 = keypoint_array(plain)
    p1, s1 = keypoint_array(flipped.json())
    np.testing.assert_allclose(p1, p0, atol=1e-3)
    np.testing.assert_allclose(s1, s0, atol=1e-4)


def test_batch_returns_each_image_in_order_from_one_model_call(constant_server, constant_peaks):
    sizes = [(640, 425), (200, 500), (333, 333)]
    files = [("files", (f"{i}.png", encode(gray_image(*s)), "image/png")) for i, s in enumerate(sizes)]
    with constant_server.client() as client:
        before = _batch_histogram(client.get("/metrics").text)
        r = client.post("/predict/batch", params={"refine": "dark"}, files=files)
        after = _batch_histogram(client.get("/metrics").text)
    assert r.status_code == 200, r.text
    bodies = r.json()
    assert [b["image"] for b in bodies] == [{"width": w, "height": h} for w, h in sizes]
    for body, size in zip(bodies, sizes, strict=True):
        expected, per_px = expected_keypoints(constant_peaks, size)
        assert_close(body, expected, per_px, "dark")
    assert after[0] - before[0] == 1  # one session call ...
    assert after[1] - before[1] == len(sizes)  # ... holding all three images


def _batch_histogram(metrics_text: str) -> tuple[float, float]:
    values = {}
    for line in metrics_text.splitlines():
        for name in ("pose_inference_batch_size_count", "pose_inference_batch_size_sum"):
            if line.startswith(name + " "):
                values[name] = float(line.split()[1])
    return values["pose_inference_batch_size_count"], values["pose_inference_batch_size_sum"]


# ---------------------------------------------------------------- pixels: EXIF orientation, big JPEGs


@pytest.fixture(scope="module")
def blob_server(blob_model_path) -> Iterator[ServiceProcess]:
    with ServiceProcess(blob_model_path) as server:
        yield server


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(blob_server, orientation):
    width, height, centre = 300, 200, (211.3, 67.8)
    data = with_orientation(blob_image(width, height, centre, sigma=10.0), orientation)
    with blob_server.client() as client:
        r = client.post("/predict", params={"refine": "dark"}, files={"file": ("o.jpg", data, "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"] == {"width": width, "height": height}
    [blob] = body["keypoints"]
    per_hm_px = STRIDE * max(width, height) / INPUT
    error = np.hypot(blob["x"] - centre[0], blob["y"] - centre[1]) / per_hm_px
    assert error < 0.1, (blob, centre)


def test_large_jpeg_reduced_decode_keeps_coordinates(blob_server):
    width, height, centre = 3000, 2000, (1234.5, 1456.0)
    data = encode(blob_image(width, height, centre, sigma=90.0), "JPEG", quality=90)
    with blob_server.client() as client:
        r = client.post("/predict", params={"refine": "dark"}, content=data, headers={"content-type": "image/jpeg"})
    assert r.status_code == 200, r.text
    [blob] = r.json()["keypoints"]
    per_hm_px = STRIDE * max(width, height) / INPUT
    assert np.hypot(blob["x"] - centre[0], blob["y"] - centre[1]) / per_hm_px < 0.1, blob
