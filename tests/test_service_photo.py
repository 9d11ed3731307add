"""The real photo (COCO val2017 image 785, a skier, CC BY 2.0) through the real server.

Uses the shipped ``weights/default.onnx`` when it exists; otherwise a small random-weight
StackedHourglass exported here with ``model_export.export`` (the test may import torch, the
service never does). A model that never saw a real photo (the shipped one: see weights/README.md), like a
random one, can put an unsure joint's peak in the letterbox padding; so the inside-the-image check uses
``resize=stretch``, where every heatmap pixel maps onto the image, and the letterbox case checks
that every keypoint lies in the letterboxed frame (the image plus its padding) in image pixels.
The accuracy check compares the shipped model's 12 limb joints, cropped with the person box, with COCO's
own annotation of the skier, by the LSP protocol's yardstick: within 0.2 torso lengths.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from model_export.__main__ import main as model_export_main
from model_export.data.coco import load as load_coco
from pose.layout import MPII_JOINTS
from tests.helpers.server import REPO_ROOT, ServiceProcess

DEFAULT_MODEL = REPO_ROOT / "weights" / "default.onnx"
DETECTOR = REPO_ROOT / "weights" / "person_detector.onnx"
WIDTH, HEIGHT = 640, 425
# COCO val2017 annotation 442619 of image 785 (the skier; CC BY 4.0), read by the evaluation's own loader: the 12
# limb joints both skeletons share, in image pixels, and the person box.
COCO_KEYPOINTS = REPO_ROOT / "tests" / "data" / "000000000785_keypoints.json"
[SKIER] = load_coco(COCO_KEYPOINTS)
COCO_LIMBS = {MPII_JOINTS[k]: tuple(SKIER.joints[k]) for k in np.flatnonzero(SKIER.labelled)}
COCO_PERSON_BOX = ",".join(f"{v:.2f}" for v in SKIER.box)
# The LSP yardstick: 0.2 x the torso diameter (left shoulder to right hip), here 0.2 x 106.2 = 21.2 px.
TORSO = float(np.hypot(*np.subtract(COCO_LIMBS["left_shoulder"], COCO_LIMBS["right_hip"])))
LIMB_FLOOR = {"whole": 10, "box": 9}  # of 12: see the test's docstring for what was measured


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
    """The service as it ships: the photo's model, behind the shipped person detector."""
    with ServiceProcess(photo_model, detector_path=DETECTOR) as server:
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
@pytest.mark.parametrize("mode", ["whole", "box"])
def test_shipped_model_finds_the_skiers_limbs(photo_server, photo_model, coco_image, mode):
    """Measured with the shipped model (2026-12-03, 3 stacks, second cycle; `coco_skier` in weights/default.json):
    11 of 12 within 0.2 torso lengths (21.2 px) on the whole photo (the raised left elbow is 22 px off), 10 with
    COCO's person box (which takes in the skis and poles; the left elbow and wrist miss); the floors are 10 and 9.
    The first 3-stack cycle found the same, the 2-stack second polish 11 and 9, the first polish 11 and 10, the first
    real-photo default 10 and 7, the synthetic-only model 4 and 7."""
    if photo_model != DEFAULT_MODEL:
        pytest.skip("needs the shipped weights/default.onnx")
    params = {"bbox": COCO_PERSON_BOX} if mode == "box" else {}
    with photo_server.client() as client:
        r = client.post("/predict", params=params, files={"file": ("785.jpg", coco_image, "image/jpeg")})
    assert r.status_code == 200, r.text
    errors = limb_errors(r.json())
    assert len(errors) == 12 and abs(TORSO - 106.17) < 0.01
    assert sum(e <= 0.2 * TORSO for e in errors.values()) >= LIMB_FLOOR[mode], errors


def limb_errors(body: dict) -> dict[str, float]:
    """Pixel distance of each of the 12 limb joints from COCO's label."""
    found = {k["name"]: (k["x"], k["y"]) for k in body["keypoints"]}
    return {n: float(np.hypot(found[n][0] - x, found[n][1] - y)) for n, (x, y) in COCO_LIMBS.items()}


@pytest.mark.slow
def test_evaluate_counts_what_the_server_answers(photo_server, photo_model, coco_image, tmp_path):
    """``evaluate --dataset coco`` (the command behind the model card's skier counts) scores exactly what
    ``POST /predict`` returns with its default settings (the person detector for the whole photo), with the box and
    without; any model will do."""
    out = tmp_path / "coco.json"
    argv = ["evaluate", "--onnx", str(photo_model), "--dataset", "coco", "--coco-annotations", str(COCO_KEYPOINTS)]
    assert model_export_main([*argv, "--json", str(out)]) == 0
    report = json.loads(out.read_text())["modes"]
    for mode, params in (("box", {"bbox": COCO_PERSON_BOX}), ("whole", {})):
        with photo_server.client() as client:
            r = client.post("/predict", params=params, files={"file": ("785.jpg", coco_image, "image/jpeg")})
        hits = sum(e <= 0.2 * TORSO for e in limb_errors(r.json()).values())
        assert (report[mode]["pck@0.2"]["limbs_correct"], report[mode]["pck@0.2"]["limbs_scored"]) == (hits, 12)
