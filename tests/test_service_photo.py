"""The real photo (COCO val2017 image 785, a skier, CC BY 2.0) through the real server.

Uses the shipped ``weights/default.onnx`` when it exists; otherwise a small random-weight
StackedHourglass exported here with ``model_export.export`` (the test may import torch, the
service never does). A model that never saw a real photo (the shipped one: see weights/README.md), like a
random one, can put an unsure joint's peak in the letterbox padding; so the inside-the-image check uses
``resize=stretch``, where every heatmap pixel maps onto the image, and the letterbox case checks
that every keypoint lies in the letterboxed frame (the image plus its padding) in image pixels.
The accuracy check compares the shipped model's arm and torso joints, cropped with the person box,
with COCO's own annotation of the skier.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.server import REPO_ROOT, ServiceProcess

DEFAULT_MODEL = REPO_ROOT / "weights" / "default.onnx"
WIDTH, HEIGHT = 640, 425
# COCO val2017 annotation of image 785 (the skier; CC BY 4.0), joints both skeletons share, in image pixels.
COCO_ARMS_AND_HIPS = {
    "left_shoulder": (399, 108), "right_shoulder": (358, 129), "left_elbow": (433, 142), "right_elbow": (341, 159),
    "left_wrist": (449, 165), "right_wrist": (309, 178), "left_hip": (424, 203), "right_hip": (393, 214),
}  # fmt: skip
COCO_PERSON_BOX = "280.79,44.73,218.70,346.68"


@pytest.fixture(scope="module")
def photo_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if DEFAULT_MODEL.exists():
        return DEFAULT_MODEL
    torch = pytest.importorskip("torch")
    from model_export.export import export_onnx
    from model_export.model import StackedHourglass

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("photo") / "random_hg.onnx"
    export_onnx(StackedHourglass(1, 16, 16, order=4), path, provenance={"name": "random-test"}, log=lambda _: None)
    return path


@pytest.fixture(scope="module")
def photo_server(photo_model) -> Iterator[ServiceProcess]:
    with ServiceProcess(photo_model) as server:
        yield server


@pytest.mark.slow
@pytest.mark.parametrize("flip", [False, True])
def test_real_photo_gives_16_keypoints_inside_the_image(photo_server, coco_image, flip):
    params = {"flip": str(flip).lower(), "resize": "stretch"}
    with photo_server.client() as client:
        r = client.post("/predict", params=params, files={"file": ("000000000785.jpg", coco_image, "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"] == {"width": WIDTH, "height": HEIGHT}
    keypoints = body["keypoints"]
    assert len(keypoints) == 16
    assert len({k["name"] for k in keypoints}) == 16
    for k in keypoints:
        assert -0.5 <= k["x"] <= WIDTH - 0.5 and -0.5 <= k["y"] <= HEIGHT - 0.5, k
        assert k["score"] == k["score"]  # not NaN


@pytest.mark.slow
def test_real_photo_batch_matches_single_requests(photo_server, coco_image):
    files = [("files", (f"{i}.jpg", coco_image, "image/jpeg")) for i in range(3)]
    with photo_server.client() as client:
        single = client.post("/predict", files={"file": ("a.jpg", coco_image, "image/jpeg")}).json()
        batch = client.post("/predict/batch", files=files)
    assert batch.status_code == 200, batch.text
    assert len(batch.json()) == 3
    for body in batch.json():
        for a, b in zip(body["keypoints"], single["keypoints"], strict=True):
            assert a["name"] == b["name"]
            assert abs(a["x"] - b["x"]) < 1e-3 and abs(a["y"] - b["y"]) < 1e-3


@pytest.mark.slow
def test_real_photo_letterboxed_keypoints_stay_in_the_letterbox_frame(photo_server, coco_image):
    with photo_server.client() as client:
        r = client.post("/predict", files={"file": ("000000000785.jpg", coco_image, "image/jpeg")})
    assert r.status_code == 200, r.text
    keypoints = r.json()["keypoints"]
    assert len(keypoints) == 16
    pad = (WIDTH - HEIGHT) / 2  # the 640-wide image is letterboxed into a square: padding above and below
    for k in keypoints:
        assert -0.5 <= k["x"] <= WIDTH - 0.5 and -0.5 - pad <= k["y"] <= HEIGHT - 0.5 + pad, k


@pytest.mark.slow
def test_shipped_model_finds_the_skiers_arms_and_hips(photo_server, photo_model, coco_image):
    """Measured: all 8 within 25 px (median 10; the skier's head is about 50 px tall); the floor is 6 within 30 px."""
    if photo_model != DEFAULT_MODEL:
        pytest.skip("needs the shipped weights/default.onnx")
    with photo_server.client() as client:
        r = client.post(
            "/predict", params={"bbox": COCO_PERSON_BOX}, files={"file": ("785.jpg", coco_image, "image/jpeg")}
        )
    assert r.status_code == 200, r.text
    found = {k["name"]: (k["x"], k["y"]) for k in r.json()["keypoints"]}
    errors = {n: ((found[n][0] - x) ** 2 + (found[n][1] - y) ** 2) ** 0.5 for n, (x, y) in COCO_ARMS_AND_HIPS.items()}
    assert sum(e <= 30.0 for e in errors.values()) >= 6, errors
