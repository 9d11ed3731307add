"""The shared crop recipe: warping through the core geometry, flips and the sample format."""

from __future__ import annotations

import numpy as np
import pytest

from model_export.data.augment import (
    INPUT_SIZE,
    AugmentConfig,
    CropParams,
    color_jitter,
    inside_crop,
    paste_person,
    person_mask,
    top_down_sample,
    warp_image,
)
from pose.geometry import Affine
from pose.layout import MPII

RIGHT_ANKLE, LEFT_ANKLE = MPII.names.index("right_ankle"), MPII.names.index("left_ankle")


def _centroid(plane: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[0 : plane.shape[0], 0 : plane.shape[1]]
    w = plane.astype(np.float64)
    return np.array([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])


def test_warp_samples_where_the_inverse_points() -> None:
    # an image whose value is its own x (and y) coordinate: bilinear warping is exact on it
    h, w = 120, 160
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = np.stack([xs, ys], axis=-1)
    crop = Affine.crop((80.3, 61.9), 70.0, (64, 64), rotation=31.0, flip=True)
    out = warp_image(ramp, crop, (64, 64))
    grid = np.stack(np.mgrid[0:64, 0:64][::-1], axis=-1).astype(np.float64)
    np.testing.assert_allclose(out, crop.to_image(grid), atol=1e-3)


def test_a_drawn_dot_lands_where_its_point_goes() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    image[120:123, 70:73] = 255  # a 3x3 dot centred on pixel (71, 121)
    crop = Affine.crop((90.0, 110.0), 80.0, INPUT_SIZE, rotation=-40.0, flip=True)
    out = warp_image(image, crop)
    expected = crop.to_input(np.array([71.0, 121.0]))
    np.testing.assert_allclose(_centroid(out[..., 0]), expected, atol=0.1)


def _two_dot_image() -> tuple[np.ndarray, np.ndarray]:
    image = np.zeros((256, 256, 3), np.uint8)
    keypoints = np.full((16, 2), 128.0)
    keypoints[RIGHT_ANKLE] = (60.0, 200.0)
    keypoints[LEFT_ANKLE] = (190.0, 210.0)
    image[199:202, 59:62, 0] = 255  # red: the right ankle
    image[209:212, 189:192, 2] = 255  # blue: the left ankle
    return image, keypoints


def test_flip_swaps_the_pairs_and_targets_follow() -> None:
    image, keypoints = _two_dot_image()
    sample = top_down_sample(image, keypoints, np.ones(16), (127.5, 127.5), 256.0, 30.0, params=CropParams(flip=True))
    img = sample["image"]
    red, blue = _centroid(img[0]), _centroid(img[2])
    # the person's right ankle label now sits on the mirrored *left* ankle dot (blue), and vice versa
    np.testing.assert_allclose(sample["keypoints"][RIGHT_ANKLE], blue, atol=0.1)
    np.testing.assert_allclose(sample["keypoints"][LEFT_ANKLE], red, atol=0.1)
    np.testing.assert_allclose(blue, (255 - 190.0, 210.0), atol=0.1)
    peak = np.unravel_index(sample["target"][RIGHT_ANKLE].argmax(), (64, 64))
    assert abs(peak[1] * 4 + 1.5 - blue[0]) <= 2 and abs(peak[0] * 4 + 1.5 - blue[1]) <= 2


def test_sample_format_and_off_crop_joints() -> None:
    image, keypoints = _two_dot_image()
    keypoints[0] = (-40.0, 10.0)  # right ankle outside the crop
    visible = np.ones(16)
    visible[3] = 0  # an unlabelled joint
    sample = top_down_sample(image, keypoints, visible, (127.5, 127.5), 128.0, 20.0, rng=np.random.default_rng(1))
    shapes = {"image": (3, 256, 256), "target": (16, 64, 64), "weight": (16,), "keypoints": (16, 2), "visible": (16,)}
    for key, shape in {**shapes, "head_size": (), "inverse": (2, 3)}.items():
        assert np.asarray(sample[key]).shape == shape, key
        assert np.asarray(sample[key]).dtype == np.float32, key
    assert sample["image"].min() >= 0.0 and sample["image"].max() <= 1.0
    on_crop = inside_crop(sample["keypoints"])
    assert not on_crop[0] and sample["visible"][0] == 0 and sample["weight"][0] == 0
    assert sample["visible"][3] == 0 and sample["weight"][3] == 0 and sample["target"][3].max() == 0
    np.testing.assert_array_equal(sample["visible"], sample["weight"])
    # the inverse brings crop keypoints back to the source
    back = Affine.from_matrix(sample["inverse"]).to_input(sample["keypoints"])
    np.testing.assert_allclose(back[on_crop], keypoints[on_crop], atol=1e-3)


def test_head_size_scales_with_the_crop() -> None:
    image, keypoints = _two_dot_image()
    params = CropParams(scale=1.25, rotation=30)
    s = top_down_sample(image, keypoints, np.ones(16), (128, 128), 128.0, 20.0, params=params)
    assert s["head_size"] == pytest.approx(20.0 * 256 / (128 * 1.25))


def test_random_crop_is_deterministic_given_the_generator() -> None:
    image, keypoints = _two_dot_image()
    a = top_down_sample(image, keypoints, np.ones(16), (128, 128), 200.0, 20.0, rng=np.random.default_rng(7))
    b = top_down_sample(image, keypoints, np.ones(16), (128, 128), 200.0, 20.0, rng=np.random.default_rng(7))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_color_jitter_stays_in_range() -> None:
    rng = np.random.default_rng(3)
    image = rng.uniform(0, 1, (32, 32, 3)).astype(np.float32)
    out = color_jitter(image, rng, 0.5, 0.5, 0.5)
    assert out.shape == image.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1 and not np.allclose(out, image)


def test_augment_config_draws_within_its_ranges() -> None:
    from model_export.data.augment import sample_crop_params

    rng = np.random.default_rng(0)
    config = AugmentConfig(shift=0.2, shift_prob=1.0)
    draws = [sample_crop_params(rng, config) for _ in range(300)]
    assert all(0.75 <= d.scale <= 1.25 and abs(d.rotation) <= 30 and max(map(abs, d.shift)) <= 0.2 for d in draws)
    assert 0.35 < np.mean([d.flip for d in draws]) < 0.65


def test_invalid_crops_raise() -> None:
    with pytest.raises(ValueError):
        Affine.crop((0, 0), 0.0, INPUT_SIZE)
    with pytest.raises(ValueError):
        Affine.from_matrix(np.eye(3))
    with pytest.raises(ValueError):
        Affine.from_matrix(np.zeros((2, 3))).inverse()


def test_a_person_mask_covers_the_limbs_and_nothing_far_from_them() -> None:
    joints = np.zeros((16, 2))
    labelled = np.zeros(16, bool)
    for name, point in {"right_shoulder": (100, 60), "right_elbow": (100, 120), "right_wrist": (100, 180)}.items():
        joints[MPII.names.index(name)] = point
        labelled[MPII.names.index(name)] = True
    mask = person_mask((256, 256), joints, labelled, MPII)
    assert mask.shape == (256, 256) and mask.dtype == np.float32
    assert mask[90, 100] > 0.95 and mask[150, 100] > 0.95  # along the arm
    assert mask[120, 200] == 0.0 and mask[20, 20] == 0.0  # far from it
    assert 0.0 < mask[120, 100 + 14] < 1.0  # a soft edge


def test_a_pasted_person_lands_to_one_side_and_leaves_the_centre_alone() -> None:
    image = np.zeros((256, 256, 3), np.float32)
    person = np.ones((256, 256, 3), np.float32)
    mask = np.zeros((256, 256), np.float32)
    mask[:, 118:138] = 1.0  # a vertical band through the middle of the pasted crop
    sides, shown = set(), 0
    for seed in range(20):
        pasted = paste_person(image, person, mask, np.random.default_rng(seed))
        assert not image.any()  # the input is not changed
        columns = np.flatnonzero(pasted[128, :, 0] > 0.5)
        if len(columns) == 0:  # the pasted person's band fell beyond the crop's edge
            continue
        shown += 1
        centre = columns.mean()
        assert abs(centre - 128) >= 0.3 * 256 * 0.95  # moved sideways by 30-60% of the width
        assert np.all(pasted[:, 120:136] == 0)  # the crop's own person, in the centre, stays visible
        sides.add(centre > 128)
    assert sides == {True, False} and shown >= 12  # both sides happen, and most draws show the pasted person
