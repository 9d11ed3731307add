"""Training data for everyday photos (issue 31): coco_subset's train2017 photos divided into a part to train on and
a held-out third to pick models by, the photo's edge cutting people off, occluders, and the ``coco`` source of the
training mix. Small fixtures built here; no real data needed."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model_export.data.augment import occlude
from model_export.data.coco import TRAIN_FIT, TRAIN_VAL, load, splits_of
from model_export.data.people import PersonDataset, PersonRecord, clip_box, cut_to, frame_cut
from model_export.data.sources import mixed_training_set
from model_export.training.config import TrainConfig
from pose.layout import MPII_JOINTS

K = len(MPII_JOINTS)


def keypoints() -> list[float]:
    """17 COCO joints in a standing pose inside a 100 x 150 image."""
    points = [(50, 20), (48, 18), (52, 18), (45, 20), (55, 20), (40, 40), (60, 40), (35, 60), (65, 60), (33, 80),
              (67, 80), (43, 85), (57, 85), (42, 110), (58, 110), (41, 135), (59, 135)]  # fmt: skip
    return [v for x, y in points for v in (x, y, 2)]


def coco_subset(folder: Path, names: list[str], split: str = "train2017") -> Path:
    """A coco_subset-shaped folder: ``images/`` and ``person_keypoints.json`` with one person per photo."""
    (folder / "images").mkdir(parents=True)
    images, annotations = [], []
    for i, name in enumerate(names):
        pixels = np.random.default_rng(i).integers(0, 255, (150, 100, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "images" / name)
        images.append({"id": i, "file_name": name, "width": 100, "height": 150, "coco_split": split})
        annotations.append({"id": 100 + i, "image_id": i, "category_id": 1, "bbox": [30, 15, 40, 125],
                            "keypoints": keypoints()})  # fmt: skip
    (folder / "person_keypoints.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    return folder


def test_train2017_is_divided_once_and_val2017_is_never_in_it(tmp_path: Path) -> None:
    names = [f"{i:012d}.jpg" for i in range(30)]
    folder = coco_subset(tmp_path / "train", names)
    fit = {p.image for p in load(folder / "person_keypoints.json", TRAIN_FIT)}
    held = {p.image for p in load(folder / "person_keypoints.json", TRAIN_VAL)}
    assert fit and held and not fit & held and fit | held == set(names)
    assert 0.15 < len(held) / len(names) < 0.55  # about a third
    assert {p.image for p in load(folder / "person_keypoints.json", "train2017")} == set(names)
    assert splits_of({"file_name": "x.jpg", "coco_split": "val2017"}) == ("val2017",)
    val = coco_subset(tmp_path / "val", names[:5], split="val2017")
    assert load(val / "person_keypoints.json", TRAIN_FIT) == []  # evaluation photos never reach training


def test_frame_cut_drops_the_joints_beyond_the_new_edge() -> None:
    joints = np.column_stack([np.full(K, 50.0), np.linspace(10, 140, K)])
    labelled = np.ones(K, bool)
    rng = np.random.default_rng(0)
    for _ in range(50):
        cut = frame_cut(joints, labelled, (100, 150), rng)
        if cut is None:
            continue
        kept, (x0, y0, x1, y1) = cut
        inside = (joints[:, 1] + 0.5 >= y0) & (joints[:, 1] + 0.5 <= y1) & (joints[:, 0] + 0.5 >= x0)
        inside &= joints[:, 0] + 0.5 <= x1
        assert np.array_equal(kept, inside) and kept.sum() >= 4
    assert frame_cut(joints, np.zeros(K, bool), (100, 150), rng) is None


def test_cut_to_blackens_outside_the_region_and_clip_box_stays_inside() -> None:
    image = Image.new("RGB", (100, 150), (200, 100, 50))
    cut = np.asarray(cut_to(image, (0, 0, 100, 90)))
    assert (cut[:90] == (200, 100, 50)).all() and (cut[90:] == 0).all()
    assert clip_box((30, 15, 40, 125), (0, 0, 100, 90)) == (30, 15, 40, 75)


def test_occlusion_covers_part_of_the_crop_only() -> None:
    crop = np.random.default_rng(3).random((64, 64, 3), dtype=np.float32)
    covered = occlude(crop, np.random.default_rng(4))
    changed = (covered != crop).any(axis=2).mean()
    assert covered.shape == crop.shape and 0.0 < changed < 0.5


def test_a_truncated_training_crop_loses_the_cut_off_joints(tmp_path: Path) -> None:
    folder = coco_subset(tmp_path / "c", ["a.jpg"])
    joints = np.column_stack([np.full(K, 50.0), 10.0 + 8.5 * np.arange(K)])  # a column of joints down the photo
    record = PersonRecord(folder / "images" / "a.jpg", joints, np.ones(K, bool))
    plain = PersonDataset([record], train=True, seed=0)
    cut = PersonDataset([record], train=True, truncate_prob=1.0, seed=0)
    assert plain[0]["visible"].sum() == K and cut[0]["visible"].sum() < K


def test_the_coco_source_trains_on_the_fit_part_only(tmp_path: Path) -> None:
    names = [f"{i:012d}.jpg" for i in range(12)]
    folder = coco_subset(tmp_path / "coco_subset", names)
    args = Namespace(dataset="coco:1", epoch_size=8, data_seed=0, data_root=tmp_path, lsp=None, lspet=None, coco=None,
                     mpii_images=None, mpii_train=None, whole_image_prob=0.0, truncate_prob=0.5, occlusion_prob=0.5,
                     seed=0)  # fmt: skip
    mix = mixed_training_set(args, default_codec_for_test())
    (source,) = mix.sources
    fit = {p.image for p in load(folder / "person_keypoints.json", TRAIN_FIT)}
    assert {r.image.name for r in source.records} == fit
    assert source.truncate_prob == 0.5 and source.augment.occlusion_prob == 0.5
    sample = mix[0]
    assert sample["image"].shape == (3, 256, 256)


def default_codec_for_test():
    from model_export.data.augment import default_codec

    return default_codec()


@pytest.mark.parametrize("field", ["truncate_prob", "occlusion_prob", "whole_image_prob"])
def test_shares_outside_0_1_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field.replace("_", "-")):
        TrainConfig(**{field: 1.5})
