"""The label audit (``python -m model_export label-audit``) and training's ``--mirrored``: people whose left and
right labels are swapped are found with a teacher and swapped back. The teacher here is a graph written in the test
with a left and a right (``tests/helpers/tfjs_graphs.py``: left keypoints on the reddest pixel, right ones on the
greenest)."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from evaluation.label_audit import agreement, audit
from model_export.data.people import DataError, PersonRecord, lsp_records, mirror_labels
from model_export.data.sources import real_records
from model_export.teacher import Teacher
from pose.layout import MPII
from tests.helpers.tfjs_graphs import two_spot_teacher

RED, GREEN = (60, 110), (140, 110)  # (x, y) of the two spots in every photo
LSP_RIGHT, LSP_LEFT = (0, 1, 2, 6, 7, 8), (3, 4, 5, 9, 10, 11)  # LSP's joint order: right, then left limb joints


def write_lspet(root: Path) -> None:
    """Four LSPET-layout people in photos with a red and a green spot: the first labelled with its left joints on
    the red spot (as the teacher sees it), the second mirrored, the third without a torso (nothing labelled but
    its head), the fourth mirrored but upside down. The shoulders are 40 px above their spot and the hips 40 px
    below (the fourth: the other way round), so 8 of the 12 limb joints can agree with the teacher."""
    joints = np.zeros((4, 14, 3))
    joints[..., 2] = 1.0  # LSPET: 1 = visible
    for person, (left, right, up) in enumerate([(RED, GREEN, 1), (GREEN, RED, 1), (RED, GREEN, 1), (GREEN, RED, -1)]):
        joints[person, list(LSP_LEFT), :2] = np.array(left) + 1  # joints.mat is 1-based
        joints[person, list(LSP_RIGHT), :2] = np.array(right) + 1
        joints[person, [8, 9], 1] -= 40 * up  # LSP's right and left shoulder
        joints[person, [2, 3], 1] += 40 * up  # right and left hip
        joints[person, 12:, :2] = (90, 20)
    joints[2, :12, 2] = 0.0
    root.mkdir(parents=True)
    savemat(root / "joints.mat", {"joints": joints.transpose(1, 2, 0)})
    (root / "images").mkdir()
    for index in range(4):
        pixels = np.full((220, 200, 3), 40, np.uint8)
        for (x, y), colour in ((RED, (255, 0, 0)), (GREEN, (0, 255, 0))):
            pixels[y - 3 : y + 4, x - 3 : x + 4] = colour
        Image.fromarray(pixels).save(root / "images" / f"im{index + 1:04d}.jpg", quality=95)


def test_agreement_counts_limb_joints_as_labelled_and_mirrored() -> None:
    joints = np.zeros((16, 2))
    left = [MPII.names.index(n) for n in MPII.names if n.startswith("left_")]
    right = [MPII.flip_index[j] for j in left]
    joints[left], joints[right] = RED, GREEN
    record = PersonRecord(Path("x.jpg"), joints, np.ones(16, bool))
    mirrored_points = joints[list(MPII.flip_index)]
    assert agreement(record, joints) == (12, 0)
    assert agreement(record, mirrored_points) == (0, 12)


def test_the_audit_finds_the_mirrored_person_and_training_swaps_it_back(tmp_path: Path) -> None:
    write_lspet(tmp_path / "lspet")
    teacher = Teacher(two_spot_teacher(tmp_path / "teacher"))
    records = lsp_records(tmp_path / "lspet", source="lspet")
    mirrored, counts = audit(records, teacher, margin=4, min_agree=8)
    assert mirrored == ["im0002.jpg"]
    assert counts == {"people": 4, "not upright or without a torso": 2, "mirrored": 1}

    listing = tmp_path / "lspet_mirrored.json"
    listing.write_text(json.dumps({"source": "lspet", "mirrored": mirrored}))
    args = Namespace(lspet=tmp_path / "lspet", data_root=tmp_path, mirrored=[listing])
    fixed = {r.image.name: r for r in real_records(args, ["lspet"])["lspet"]}
    left_shoulder = MPII.names.index("left_shoulder")
    assert np.allclose(fixed["im0001.jpg"].joints[left_shoulder], (RED[0], RED[1] - 40))  # untouched
    assert np.allclose(fixed["im0002.jpg"].joints[left_shoulder], (RED[0], RED[1] - 40))  # swapped back
    assert mirror_labels(records, [])[1] is records[1]
    with pytest.raises(DataError, match="1 of the 1 mirrored images are not among these people"):
        mirror_labels(records, ["im9999.jpg"])
