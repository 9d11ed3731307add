"""Person records and their crops: the training and evaluation crop is the service's crop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model_export.data.augment import INPUT_SIZE, AugmentConfig
from model_export.data.people import (
    TORSO_SIZE,
    DataError,
    PersonDataset,
    PersonRecord,
    box_square,
    joint_box,
    mpii_records,
    whole_image_square,
)
from pose.geometry import Affine, plan
from pose.layout import MPII_JOINTS

J = {name: i for i, name in enumerate(MPII_JOINTS)}
K = len(MPII_JOINTS)


def person(image: Path, seed: int = 0, labelled: np.ndarray | None = None) -> PersonRecord:
    rng = np.random.default_rng(seed)
    joints = np.column_stack([rng.uniform(40, 120, K), rng.uniform(30, 170, K)])
    return PersonRecord(image, joints, np.ones(K, bool) if labelled is None else labelled)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    pixels = np.random.default_rng(1).integers(0, 255, size=(200, 150, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_joint_box_is_in_pixel_edge_coordinates() -> None:
    joints = np.array([[10.0, 20.0], [30.0, 60.0], [500.0, 500.0]])
    assert joint_box(joints, np.array([True, True, False])) == (10.5, 20.5, 20.0, 40.0)
    # a box from one joint still has a usable size, centred on it
    x, y, w, h = joint_box(joints, np.array([True, False, False]))
    assert (w, h) == (8.0, 8.0) and (x + w / 2, y + h / 2) == (10.5, 20.5)
    with pytest.raises(DataError):
        joint_box(joints, np.zeros(3, bool))


@pytest.mark.parametrize("box", [(12.5, 30.0, 80.0, 140.0), (-20.0, 5.0, 300.0, 90.0), (0.0, 0.0, 7.0, 7.0)])
def test_the_box_crop_maps_points_exactly_like_the_service(box: tuple[float, float, float, float]) -> None:
    centre, side = box_square(box)
    ours = Affine.crop(centre, side, INPUT_SIZE)
    service = plan((150, 200), (256, 256), "letterbox", box)
    points = np.random.default_rng(0).uniform(-50, 250, size=(20, 2))
    np.testing.assert_allclose(ours.to_input(points), service.to_input(points), atol=1e-9)


@pytest.mark.parametrize("size", [(150, 200), (640, 425), (300, 300)])
def test_the_whole_image_crop_maps_points_exactly_like_the_service(size: tuple[int, int]) -> None:
    centre, side = whole_image_square(size)
    points = np.random.default_rng(0).uniform(-50, 650, size=(20, 2))
    np.testing.assert_allclose(
        Affine.crop(centre, side, INPUT_SIZE).to_input(points), plan(size, (256, 256)).to_input(points), atol=1e-9
    )


def test_evaluation_sample_is_the_service_crop_with_its_normalisers(photo: Path) -> None:
    record = person(photo)
    sample = PersonDataset([record])[0]
    centre, side = box_square(record.box())
    np.testing.assert_allclose(sample["keypoints"], Affine.crop(centre, side, INPUT_SIZE).to_input(record.joints), 1e-5)
    torso = np.linalg.norm(record.joints[J["left_shoulder"]] - record.joints[J["right_hip"]])
    assert sample[TORSO_SIZE] == pytest.approx(torso * 256 / side, rel=1e-5)
    neck_to_top = np.linalg.norm(record.joints[J["upper_neck"]] - record.joints[J["head_top"]])
    assert sample["head_size"] == pytest.approx(0.6 * np.sqrt(2) * neck_to_top * 256 / side, rel=1e-5)
    assert sample["image"].shape == (3, 256, 256) and sample["target"].shape == (K, 64, 64)


def test_unlabelled_torso_gives_no_normaliser(photo: Path) -> None:
    labelled = np.ones(K, bool)
    labelled[J["right_hip"]] = False
    record = person(photo, labelled=labelled)
    assert record.torso_size() == 0.0
    assert PersonDataset([record])[0][TORSO_SIZE] == 0.0
    assert PersonDataset([record])[0]["weight"][J["right_hip"]] == 0.0


def test_whole_image_evaluation_letterboxes_the_photo(photo: Path) -> None:
    record = person(photo)
    sample = PersonDataset([record], whole_image=True)[0]
    expected = plan((150, 200), (256, 256)).to_input(record.joints)
    np.testing.assert_allclose(sample["keypoints"], expected, atol=1e-4)
    # the 150-wide photo is letterboxed into 256 columns: black bars left and right
    assert sample["image"][:, :, :20].max() == 0.0 and sample["image"][:, :, 60:200].max() > 0.0


def test_training_draws_are_deterministic_per_epoch_and_vary_between_epochs(photo: Path) -> None:
    data = PersonDataset([person(photo, s) for s in range(4)], train=True, whole_image_prob=0.5, seed=3)
    a = data[1]["keypoints"]
    np.testing.assert_array_equal(a, data[1]["keypoints"])
    data.set_epoch(1)
    assert not np.allclose(a, data[1]["keypoints"])


def test_whole_image_share_follows_the_probability(photo: Path) -> None:
    """A whole-image crop puts the image centre on the crop centre; a box crop (jittered by 8% at most) does not."""
    records = [person(photo, 0)] * 200
    for prob, low, high in ((0.0, 0, 0), (0.3, 40, 80), (1.0, 200, 200)):
        data = PersonDataset(records, train=True, whole_image_prob=prob)
        data.augment = data.whole_augment = AugmentConfig(rotation=0.0, scale=(1.0, 1.0), flip_prob=0.0, color=0.0)
        whole = sum(np.allclose(data[i]["inverse"][:, 2] + data[i]["inverse"][:, :2] @ [127.5, 127.5], [74.5, 99.5])
                    for i in range(len(records)))  # fmt: skip
        assert low <= whole <= high, (prob, whole)


def test_mpii_records_need_no_head_boxes_and_know_who_is_alone(tmp_path: Path) -> None:
    joints = [[10.0 + j, 20.0 + j] for j in range(K)]
    entry = {"joints": joints, "joints_vis": [1] * K, "center": [20.0, 30.0], "scale": 1.0}
    annotations = tmp_path / "annotations.json"
    annotations.write_text(
        json.dumps([{**entry, "image": "a.jpg"}, {**entry, "image": "b.jpg"}, {**entry, "image": "b.jpg"}])
    )
    (tmp_path / "images").mkdir()
    records = mpii_records(tmp_path / "images", annotations)
    assert [(r.image.name, r.alone) for r in records] == [("a.jpg", True), ("b.jpg", False), ("b.jpg", False)]
    np.testing.assert_array_equal(records[0].joints, np.asarray(joints) - 1.0)
    with pytest.raises(DataError, match="not found"):
        mpii_records(tmp_path / "nowhere", annotations)


def test_a_distractor_is_pasted_into_training_crops_only_and_the_labels_stay(photo: Path, tmp_path: Path) -> None:
    """With distractor_prob 1 every training box crop gets another person of the set pasted beside its own: the
    pixels change, the targets and weights do not; evaluation crops never change."""
    other = tmp_path / "other.jpg"
    Image.fromarray(np.full((200, 150, 3), 255, np.uint8)).save(other)  # a white person on white
    records = [person(photo, 0), person(other, 1)]
    plain = PersonDataset(records, train=True, seed=5)
    distracted = PersonDataset(records, train=True, seed=5, distractor_prob=1.0)
    a, b = plain[0], distracted[0]
    assert (b["image"] > a["image"] + 0.05).mean() > 0.02  # white pasted in
    for key in ("target", "weight", "keypoints", "inverse"):
        np.testing.assert_array_equal(a[key], b[key])
    evaluation = PersonDataset(records, distractor_prob=1.0)
    np.testing.assert_array_equal(evaluation[0]["image"], PersonDataset(records)[0]["image"])
