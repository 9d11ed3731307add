"""The synthetic figure generator: determinism, splits, labels on the drawn body, truncation."""

from __future__ import annotations

import numpy as np
import pytest

from model_export.data.augment import inside_crop
from model_export.data.synthetic import (
    CANVAS,
    HELDOUT_SEED_START,
    SyntheticPoseDataset,
    generate_sample,
    render_scene,
    sample_rng,
    sample_seed,
)
from pose.layout import MPII

R_HIP, L_HIP = MPII.names.index("right_hip"), MPII.names.index("left_hip")
R_SHOULDER, L_SHOULDER = MPII.names.index("right_shoulder"), MPII.names.index("left_shoulder")


@pytest.fixture(scope="module")
def samples() -> list[dict[str, np.ndarray]]:
    return [generate_sample(sample_seed("train", i)) for i in range(48)]


def test_same_seed_same_sample_and_different_seeds_differ() -> None:
    a, b, c = generate_sample(5), generate_sample(5), generate_sample(6)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["image"], c["image"])
    assert not np.allclose(a["keypoints"], c["keypoints"])


def test_held_out_seeds_are_never_training_seeds() -> None:
    train = SyntheticPoseDataset("train", length=100)
    held = SyntheticPoseDataset("heldout", length=100)
    train_seeds = set()
    for epoch in range(3):
        train.set_epoch(epoch)
        train_seeds |= {train.seed_of(i) for i in range(len(train))}
    held.set_epoch(5)  # the held-out split ignores epochs
    held_seeds = {held.seed_of(i) for i in range(len(held))}
    assert len(train_seeds) == 300 and len(held_seeds) == 100
    assert not train_seeds & held_seeds
    assert max(train_seeds) < HELDOUT_SEED_START <= min(held_seeds)
    with pytest.raises(ValueError):
        sample_seed("train", HELDOUT_SEED_START)  # training can never reach the held-out range
    with pytest.raises(ValueError):
        sample_seed("test", 0)
    with pytest.raises(IndexError):
        train.seed_of(100)


def test_dataset_items_follow_their_seeds() -> None:
    ds = SyntheticPoseDataset("heldout", length=4, base_seed=3)
    item = ds[2]
    again = generate_sample(sample_seed("heldout", 2), base_seed=3)
    np.testing.assert_array_equal(item["image"], again["image"])
    other_base = generate_sample(sample_seed("heldout", 2), base_seed=4)
    assert not np.array_equal(item["image"], other_base["image"])


@pytest.mark.parametrize("seed", range(25))
def test_joint_labels_land_on_the_drawn_figure(seed: int) -> None:
    scene = render_scene(sample_rng(seed), occluders=False, distractors=False, blur=False)
    palette = scene.figure.palette
    for j, (x, y) in enumerate(scene.keypoints):
        xi, yi = int(round(x)), int(round(y))
        assert 0 <= xi < CANVAS and 0 <= yi < CANVAS, MPII.names[j]
        colour = tuple(int(v) for v in scene.image[yi, xi])
        assert colour in palette, f"{MPII.names[j]} at ({x:.1f}, {y:.1f}) is on {colour}, not on the figure"
    # the labels are not just anywhere on the figure: the ends of the limbs carry their own parts' colours
    colours = scene.figure.colours
    ankle = scene.keypoints[MPII.names.index("right_ankle")]
    assert tuple(int(v) for v in scene.image[int(round(ankle[1])), int(round(ankle[0]))]) == colours["shoe"]
    x1, y1, x2, y2 = scene.head_box
    top = scene.keypoints[MPII.names.index("head_top")]
    assert x1 <= top[0] <= x2 and y1 <= top[1] <= y2


def test_the_figure_faces_the_camera() -> None:
    # MPII convention: the person's right side appears on the image's left
    for seed in range(20):
        scene = render_scene(sample_rng(seed))
        assert scene.keypoints[R_HIP, 0] < scene.keypoints[L_HIP, 0]
        assert scene.keypoints[R_SHOULDER, 0] < scene.keypoints[L_SHOULDER, 0]


def test_augmented_samples_keep_the_convention_through_flips(samples: list[dict[str, np.ndarray]]) -> None:
    # lean (<= 30 deg) plus crop rotation (<= 30 deg) never turns a figure past 90 deg, and a flip swaps the labels
    for s in samples:
        assert s["keypoints"][R_HIP, 0] < s["keypoints"][L_HIP, 0]


def test_sample_format(samples: list[dict[str, np.ndarray]]) -> None:
    s = samples[0]
    shapes = {"image": (3, 256, 256), "target": (16, 64, 64), "weight": (16,), "keypoints": (16, 2), "visible": (16,)}
    for key, shape in {**shapes, "head_size": (), "inverse": (2, 3)}.items():
        assert np.asarray(s[key]).shape == shape and np.asarray(s[key]).dtype == np.float32, key
    for s in samples:
        assert s["image"].min() >= 0.0 and s["image"].max() <= 1.0
        assert 5.0 < float(s["head_size"]) < 150.0


def test_truncated_joints_are_not_visible(samples: list[dict[str, np.ndarray]]) -> None:
    truncated = 0
    for s in samples:
        on_crop = inside_crop(s["keypoints"])
        np.testing.assert_array_equal(s["visible"], on_crop.astype(np.float32))
        np.testing.assert_array_equal(s["weight"], s["visible"])
        assert np.all(s["target"][~on_crop] == 0)
        truncated += int((~on_crop).any())
    assert truncated >= 2, "the generator should cut some figures at the crop border"
    assert truncated < len(samples) / 2
