"""The benchmark's peers do the service's work the way a framework user would, and the comparisons are fair:
the same letterbox map, the same keypoints, BlazePose's landmarks mapped onto the right joints, real photo
content for the large uploads. (``tests/test_bench_smoke.py`` runs the peers themselves.)"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.accuracy_speed import BLAZEPOSE_JOINTS
from bench.common import PHOTO, tiled_photo, tiled_photo_jpeg
from bench.frameworks import Disagreement, keypoint_spread
from bench.peer_apps.pose_onnx import PoseModel
from bench.peer_venvs import PEER_SETS, lock_file, peer_python
from evaluation.photo_eval import LIMB_INDICES
from pose.codec import HeatmapCodec
from pose.geometry import plan
from pose.layout import MPII_JOINTS
from tests.helpers.models import constant_model


@pytest.mark.parametrize("size", [(640, 425), (4000, 3000), (300, 500), (257, 129), (1000, 1000)])
def test_peer_letterbox_is_the_service_map(size: tuple[int, int], tmp_path: Path) -> None:
    """Resize-and-paste places the image where the service's exact map does (to its integer rounding)."""
    model = tmp_path / "m.onnx"
    constant_model(model, np.zeros((16, 2)), sigma=1.0)
    peer = PoseModel(str(model))
    _, box = peer.letterbox(Image.new("RGB", size))
    service = plan(size, (256, 256))
    points = np.array([[0.0, 0.0], [127.5, 127.5], [255.0, 200.0]])
    tolerance = 0.5 / min(box.scale_x, box.scale_y) + 1e-9  # the pasted size is rounded to whole pixels
    assert np.abs(box.to_image(points) - service.to_image(points)).max() <= tolerance
    if size in ((640, 425), (4000, 3000)):  # the benchmark's photos: the same map exactly
        np.testing.assert_allclose(box.to_image(points), service.to_image(points), atol=1e-9)


def test_peer_keypoints_match_the_service_codec(tmp_path: Path) -> None:
    """The peers' argmax with the quarter shift is the service's ``quarter`` decoding, point for point."""
    # off-centre peaks, so the quarter shift goes either way on each axis (and none on the border, x = 0)
    peaks = np.column_stack([np.r_[0.0, np.linspace(3.3, 60.7, 15)], np.linspace(58.2, 4.6, 16)])
    model = tmp_path / "m.onnx"
    constant_model(model, peaks, sigma=1.5)
    peer = PoseModel(str(model))
    x, box = peer.preprocess(PHOTO.read_bytes())
    heatmaps = peer.heatmaps(x[None])[0]
    answer = peer.keypoints(heatmaps, box)
    coords, _ = HeatmapCodec((256, 256), 4).decode(heatmaps)
    expected = plan((640, 425), (256, 256)).to_image(coords)
    got = np.array([[k["x"], k["y"]] for k in answer["keypoints"]])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    shifts = coords - ((np.rint(peaks) + 0.5) * 4 - 0.5)
    assert {-1.0, 1.0} <= set(np.round(shifts.ravel(), 3)) and shifts[0, 0] == 0.0
    assert [k["name"] for k in answer["keypoints"]] == list(MPII_JOINTS)
    assert answer["image"] == {"width": 640, "height": 425}


def _answer(points: np.ndarray, names: list[str] | None = None) -> dict:
    names = names or [f"j{i}" for i in range(len(points))]
    return {"keypoints": [{"name": n, "x": x, "y": y} for n, (x, y) in zip(names, points, strict=True)]}


def test_keypoint_spread_is_the_largest_distance_from_the_service() -> None:
    base = np.array([[10.0, 10.0], [20.0, 30.0], [5.0, 5.0]])
    moved = base + [[0.0, 0.0], [3.0, 4.0], [0.5, 0.0]]
    spread = keypoint_spread({"service": _answer(base), "peer": _answer(moved)})
    assert spread == {"service": 0.0, "peer": 5.0}
    with pytest.raises(Disagreement):
        keypoint_spread({"service": _answer(base), "peer": _answer(base, ["a", "b", "c"])})


def test_blazepose_landmarks_stand_for_lsp_limb_joints() -> None:
    """The twelve landmarks compared are LSP's twelve limb joints, each once, left and right as named by
    BlazePose's topology (odd numbers are the person's left from 11 on)."""
    assert sorted(MPII_JOINTS.index(name) for name in BLAZEPOSE_JOINTS) == sorted(LIMB_INDICES)
    assert len(set(BLAZEPOSE_JOINTS.values())) == 12
    for name, index in BLAZEPOSE_JOINTS.items():
        assert (index % 2 == 1) == name.startswith("left_"), name


def test_tiled_photo_is_the_photo_mirrored_without_seams() -> None:
    with Image.open(PHOTO) as opened:
        photo = np.asarray(opened.convert("RGB"))
    h, w = photo.shape[:2]
    tiled = np.asarray(tiled_photo(3 * w + 7, 2 * h + 3))
    assert tiled.shape == (2 * h + 3, 3 * w + 7, 3)
    np.testing.assert_array_equal(tiled[:h, :w], photo)
    np.testing.assert_array_equal(tiled[:h, w : 2 * w], photo[:, ::-1])  # mirrored: the tiles meet edge to edge
    np.testing.assert_array_equal(tiled[h : 2 * h, :w], photo[::-1])
    data = tiled_photo_jpeg(1600, 1200, progressive=True)
    with Image.open(io.BytesIO(data)) as jpeg:
        assert jpeg.size == (1600, 1200) and jpeg.info.get("progressive") == 1


@pytest.mark.parametrize("name", PEER_SETS)
def test_each_peer_has_a_complete_pinned_lock(name: str) -> None:
    lock = lock_file(name).read_text().splitlines()
    pins = [line for line in lock if line and not line.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[^\s=]+", line) for line in pins), pins
    wanted = {"litserve": "litserve", "bentoml": "bentoml", "litert": "ai-edge-litert"}[name]
    assert any(line.lower().startswith(f"{wanted}==") for line in pins)
    if name != "litert":  # the peers run the model with the service's own ONNX Runtime
        serve = (lock_file(name).parent / "serve.txt").read_text()
        ort = next(line for line in pins if line.startswith("onnxruntime=="))
        assert ort in serve.splitlines()


def test_peers_stay_out_of_the_service_dependencies() -> None:
    requirements = Path(lock_file("litserve")).parent
    for product in ("serve.txt", "train.txt", "dev.txt", "gpu.txt"):
        text = (requirements / product).read_text().lower()
        assert "litserve" not in text and "bentoml" not in text and "ai-edge-litert" not in text, product
    with pytest.raises(ValueError, match="unknown peer set"):
        peer_python("torchserve")
