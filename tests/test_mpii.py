"""The MPII loader and the evaluate command on a tiny fake MPII written by the test itself.

Two people in two JPEG images, an annotation list in the MMPose / PyTorch-port format (1-based
Matlab pixel coordinates) and a ``mpii_gt_val.mat`` with ``headboxes_src`` (2, 2, N),
``pos_gt_src`` (16, 2, N) and ``jnt_missing`` (16, N), written with scipy.io.savemat.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from evaluation.evaluate import TorchRunner, predict_dataset, score
from model_export.__main__ import main
from model_export.data.augment import AugmentConfig
from model_export.data.mpii import (
    SOURCE_HEAD_SIZE,
    SOURCE_KEYPOINTS,
    SOURCE_VISIBLE,
    MPIIDataError,
    MPIIDataset,
    load_annotations,
    load_headboxes,
)
from model_export.model import StackedHourglass
from pose.codec import flip_heatmaps
from pose.geometry import Affine
from pose.layout import MPII, MPII_JOINTS

K = len(MPII_JOINTS)
SIZE = 256
MPII_SHORT_NAMES = "rank rkne rhip lhip lkne lank pelv thor neck head rwri relb rsho lsho lelb lwri"


def person(center: tuple[float, float], spread: float, seed: int) -> np.ndarray:
    """16 joints (1-based, whole pixels) around ``center``, at least ``spread / 4`` pixels apart."""
    rng = np.random.default_rng(seed)
    joints: list[np.ndarray] = []
    while len(joints) < K:
        p = np.round(np.asarray(center) + rng.uniform(-spread, spread, size=2))
        if all(np.abs(p - q).max() >= spread / 4 for q in joints):
            joints.append(p)
    return np.stack(joints)


@pytest.fixture(scope="module")
def fake_mpii(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mpii")
    images = root / "images"
    images.mkdir()
    # person 0: scale 1 -> 250 px box, crop zoom 256/250; person 1: scale 0.2 -> 50 px box, zoom 5.12
    people = [
        {"image": "000000001.jpg", "size": (320, 300), "center": [161.0, 121.0], "scale": 1.0, "spread": 90.0},
        {"image": "000000002.jpg", "size": (100, 90), "center": [51.0, 41.0], "scale": 0.2, "spread": 18.0},
    ]
    entries, headboxes, pos_gt, missing = [], [], [], []
    for i, p in enumerate(people):
        joints = person(p["center"], p["spread"], seed=i)
        vis = np.ones(K, int)
        vis[3] = 0
        joints[3] = (-1, -1)  # unlabelled joints are stored as -1 in the ports' lists
        # black image with one white pixel on each labelled joint (array index = Matlab coordinate - 1)
        pixels = np.zeros((p["size"][1], p["size"][0], 3), np.uint8)
        for (x, y), v in zip(joints.astype(int), vis, strict=True):
            if v:
                pixels[y - 1, x - 1] = 255
        Image.fromarray(pixels).save(images / p["image"], quality=100, subsampling=0)
        entries.append(
            {
                "image": p["image"],
                "joints": joints.tolist(),
                "joints_vis": vis.tolist(),
                "center": p["center"],
                "scale": p["scale"],
            }
        )
        x1, y1 = p["center"][0] - 10, p["center"][1] - 60
        headboxes.append([[x1, y1], [x1 + 30, y1 + 40]])  # 30 x 40 -> diagonal 50 -> head size 30
        pos_gt.append(joints)
        missing.append(1 - vis)
    (root / "mpii_val.json").write_text(json.dumps(entries))
    savemat(
        root / "mpii_gt_val.mat",
        {
            "headboxes_src": np.transpose(np.asarray(headboxes), (1, 2, 0)),  # (corner, xy, N)
            "pos_gt_src": np.transpose(np.asarray(pos_gt), (1, 2, 0)),  # (16, 2, N)
            "jnt_missing": np.asarray(missing).T,  # (16, N)
            "dataset_joints": np.array([MPII_SHORT_NAMES.split()]),
        },
    )
    return {"root": root, "images": images, "val": root / "mpii_val.json", "mat": root / "mpii_gt_val.mat"}


@pytest.fixture(scope="module")
def val_set(fake_mpii: dict[str, Path]) -> MPIIDataset:
    return MPIIDataset(fake_mpii["images"], fake_mpii["val"], fake_mpii["mat"])


def expected_crop(entry: dict, point: np.ndarray) -> np.ndarray:
    """Plain top-down crop by hand: 0-based centre shifted 15*scale px down, box 200*scale*1.25 px."""
    center = np.asarray(entry["center"]) + np.array([0.0, 15.0 * entry["scale"]]) - 1.0
    box = 200.0 * entry["scale"] * 1.25
    return (np.asarray(point) - 1.0 - center) * SIZE / box + (SIZE - 1) / 2


def test_annotations_become_zero_based(fake_mpii: dict[str, Path]) -> None:
    raw = json.loads(fake_mpii["val"].read_text())
    entries = load_annotations(fake_mpii["val"])
    assert len(entries) == 2
    np.testing.assert_allclose(entries[0].joints, np.asarray(raw[0]["joints"]) - 1)
    np.testing.assert_allclose(entries[0].center, [160.0, 135.0])  # (161, 121 + 15) - 1
    assert entries[0].box_size == pytest.approx(250.0)
    assert not entries[0].visible[3] and entries[0].visible.sum() == K - 1


def test_headboxes_from_the_mat(fake_mpii: dict[str, Path]) -> None:
    heads = load_headboxes(fake_mpii["mat"])
    assert heads.boxes.shape == (2, 4)
    np.testing.assert_allclose(heads.head_size, [30.0, 30.0])
    raw = json.loads(fake_mpii["val"].read_text())
    np.testing.assert_allclose(heads.joints[1], np.asarray(raw[1]["joints"]) - 1)
    np.testing.assert_array_equal(heads.visible[0], np.asarray(raw[0]["joints_vis"]) > 0)


def test_headboxes_from_npy_and_json(tmp_path: Path) -> None:
    boxes = np.array([[0.0, 0.0, 30.0, 40.0], [5.0, 5.0, 11.0, 13.0]])
    np.save(tmp_path / "heads.npy", boxes)
    (tmp_path / "heads.json").write_text(json.dumps(boxes.reshape(2, 2, 2).tolist()))
    for name in ("heads.npy", "heads.json"):
        np.testing.assert_allclose(load_headboxes(tmp_path / name).head_size, [30.0, 6.0])


def test_sample_shapes(val_set: MPIIDataset) -> None:
    sample = val_set[0]
    shapes = {k: np.shape(v) for k, v in sample.items()}
    assert shapes["image"] == (3, SIZE, SIZE) and sample["image"].dtype == np.float32
    assert shapes["target"] == (K, SIZE // 4, SIZE // 4)
    assert shapes["weight"] == shapes["visible"] == shapes[SOURCE_VISIBLE] == (K,)
    assert shapes["keypoints"] == shapes[SOURCE_KEYPOINTS] == (K, 2)
    assert shapes["inverse"] == (2, 3) and shapes["head_size"] == shapes[SOURCE_HEAD_SIZE] == ()
    assert sample["image"].min() >= 0.0 and sample["image"].max() <= 1.0
    assert float(sample[SOURCE_HEAD_SIZE]) == pytest.approx(30.0)
    assert float(sample["head_size"]) == pytest.approx(30.0 * SIZE / 250.0, rel=1e-5)
    assert sample["visible"][3] == 0 and sample["weight"][3] == 0


@pytest.mark.parametrize("index", [0, 1])
def test_keypoints_land_where_expected(fake_mpii: dict[str, Path], val_set: MPIIDataset, index: int) -> None:
    raw = json.loads(fake_mpii["val"].read_text())[index]
    sample = val_set[index]
    vis = np.asarray(raw["joints_vis"]) > 0
    joints = np.asarray(raw["joints"], np.float64)
    np.testing.assert_allclose(sample["keypoints"][vis], expected_crop(raw, joints[vis]), atol=1e-3)
    back = Affine.from_matrix(sample["inverse"]).to_input(sample["keypoints"][vis])
    assert np.abs(back - (joints[vis] - 1)).max() < 0.5
    np.testing.assert_array_equal(sample["visible"] > 0, vis)  # every labelled joint is inside these crops


def test_white_pixels_sit_under_the_zoomed_keypoints(val_set: MPIIDataset) -> None:
    """Person 1 is zoomed 5.12x: a one-pixel error in the 1-based shift would move a joint 5 crop pixels."""
    sample = val_set[1]
    brightness = sample["image"].mean(axis=0)
    for (x, y), v in zip(sample["keypoints"], sample["visible"], strict=True):
        if not v:
            continue
        ix, iy = round(float(x)), round(float(y))
        window = brightness[iy - 4 : iy + 5, ix - 4 : ix + 5]
        assert brightness[iy, ix] > 0.5
        wy, wx = np.unravel_index(np.argmax(window), window.shape)
        assert abs(wx - 4 - (x - ix)) <= 1.5 and abs(wy - 4 - (y - iy)) <= 1.5


def test_flip_swaps_pairs(fake_mpii: dict[str, Path], val_set: MPIIDataset) -> None:
    mirror = AugmentConfig(rotation=0.0, scale=(1.0, 1.0), flip_prob=1.0, color=0.0)
    flipped_set = MPIIDataset(fake_mpii["images"], fake_mpii["val"], train=True, augment=mirror)
    plain, flipped = val_set[0], flipped_set[0]
    index = MPII.flip_index
    vis = plain["visible"] > 0
    mirrored = plain["keypoints"][index].copy()
    mirrored[:, 0] = SIZE - 1 - mirrored[:, 0]
    np.testing.assert_allclose(flipped["keypoints"][vis[index]], mirrored[vis[index]], atol=1e-3)
    np.testing.assert_array_equal(flipped["visible"], plain["visible"][index])
    np.testing.assert_allclose(flipped["image"], plain["image"][:, :, ::-1], atol=1e-3)
    # the inverse maps each flipped keypoint back onto its partner's source position
    back = Affine.from_matrix(flipped["inverse"]).to_input(flipped["keypoints"])
    np.testing.assert_allclose(back[vis[index]], plain[SOURCE_KEYPOINTS][index][vis[index]], atol=0.01)


def test_training_augmentation_is_seeded(fake_mpii: dict[str, Path]) -> None:
    a = MPIIDataset(fake_mpii["images"], fake_mpii["val"], train=True, seed=3)
    b = MPIIDataset(fake_mpii["images"], fake_mpii["val"], train=True, seed=3)
    np.testing.assert_array_equal(a[0]["keypoints"], b[0]["keypoints"])
    b.set_epoch(1)
    assert not np.allclose(a[0]["keypoints"], b[0]["keypoints"])
    sample = b[0]  # rotated, scaled, maybe mirrored: the inverse still finds every joint's source position
    back = Affine.from_matrix(sample["inverse"]).to_input(sample["keypoints"])
    vis = sample["visible"] > 0
    src = b.entries[0].joints
    straight = np.abs(back - src)[vis].max()
    mirrored = np.abs(back - src[MPII.flip_index])[vis].max()
    assert min(straight, mirrored) < 0.01


def test_missing_files_name_the_path(fake_mpii: dict[str, Path], tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    cases = [
        ((nowhere, fake_mpii["val"], None), "images folder"),
        ((fake_mpii["images"], nowhere / "mpii_val.json", None), "annotation list"),
        ((fake_mpii["images"], fake_mpii["val"], nowhere / "gt.mat"), "head boxes"),
    ]
    for paths, what in cases:
        with pytest.raises(MPIIDataError) as err:
            MPIIDataset(*paths)
        assert str(nowhere) in str(err.value) and what in str(err.value)


def test_missing_image_and_bad_files_are_reported(fake_mpii: dict[str, Path], tmp_path: Path) -> None:
    entries = json.loads(fake_mpii["val"].read_text())
    entries[1]["image"] = "404.jpg"
    listing = tmp_path / "val.json"
    listing.write_text(json.dumps(entries))
    dataset = MPIIDataset(fake_mpii["images"], listing)
    with pytest.raises(MPIIDataError, match=r"404\.jpg"):
        dataset[1]
    del entries[0]["scale"]
    listing.write_text(json.dumps(entries))
    with pytest.raises(MPIIDataError, match="entry 0 lacks scale"):
        load_annotations(listing)
    np.save(tmp_path / "heads.npy", np.zeros((3, 4)))
    with pytest.raises(MPIIDataError, match="3 head boxes"):
        MPIIDataset(fake_mpii["images"], fake_mpii["val"], tmp_path / "heads.npy")


class OracleRunner:
    """A perfect model: returns the dataset's own target heatmaps (mirrored for a mirrored batch)."""

    layout = MPII
    input_size = (SIZE, SIZE)
    stride = 4

    def __init__(self, dataset: MPIIDataset, batch_size: int) -> None:
        self.dataset, self.batch_size, self.start = dataset, batch_size, 0
        self.last: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if self.last is not None and np.array_equal(images, self.last[0][..., ::-1]):
            return flip_heatmaps(self.last[1], self.layout.flip_index)
        n = len(images)
        out = np.stack([self.dataset[i]["target"] for i in range(self.start, self.start + n)])
        self.start += n
        self.last = (images, out)
        return out


@pytest.mark.parametrize("flip", [False, True])
def test_predictions_map_back_to_source_pixels(val_set: MPIIDataset, flip: bool) -> None:
    pred, gt, visible, head = predict_dataset(OracleRunner(val_set, 1), val_set, flip=flip, refine="dark", batch_size=1)
    assert pred.shape == gt.shape == (2, K, 2) and visible.shape == (2, K)
    np.testing.assert_allclose(head, [30.0, 30.0])
    assert visible.sum() == 2 * (K - 1)
    assert np.abs(pred - gt)[visible].max() < 0.1  # source pixels; a 1-based slip would show as 1 px
    assert score(pred, gt, visible, head, MPII)[0.1].mean == 1.0


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = StackedHourglass(1, 16, K, order=4)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save({"model": model.state_dict(), "config": {"stacks": 1, "features": 16, "joints": K, "order": 4}}, path)
    return path


def test_torch_runner_gives_last_stack_heatmaps(tiny_checkpoint: Path) -> None:
    runner = TorchRunner.from_checkpoint(tiny_checkpoint)
    out = runner(np.zeros((2, 3, SIZE, SIZE), np.float32))
    assert out.shape == (2, K, SIZE // 4, SIZE // 4)


def test_evaluate_cli_on_fake_mpii(
    fake_mpii: dict[str, Path], tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pckh.json"
    code = main([
        "evaluate", "--checkpoint", str(tiny_checkpoint), "--dataset", "mpii", "--flip",
        "--mpii-images", str(fake_mpii["images"]), "--mpii-val", str(fake_mpii["val"]),
        "--mpii-headboxes", str(fake_mpii["mat"]), "--json", str(out),
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert all(name in printed for name in MPII_JOINTS) and "Mean" in printed and "Mean@0.1" in printed
    result = json.loads(out.read_text())
    assert result["samples"] == 2 and result["dataset"] == "mpii" and result["flip"] is True
    assert set(result["pckh@0.5"]["per_joint"]) == set(MPII_JOINTS)
    assert result["counts"]["left_hip"] == 0 and result["pckh@0.5"]["per_joint"]["left_hip"] is None
    assert 0.0 <= result["pckh@0.5"]["mean"] <= 1.0


def test_evaluate_cli_reports_a_missing_file(
    fake_mpii: dict[str, Path], tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "mpii_gt_val.mat"
    code = main([
        "evaluate", "--checkpoint", str(tiny_checkpoint), "--dataset", "mpii",
        "--mpii-images", str(fake_mpii["images"]), "--mpii-val", str(fake_mpii["val"]),
        "--mpii-headboxes", str(missing),
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert str(missing) in err and err.count("error:") == 1
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "none.pt" in capsys.readouterr().err
