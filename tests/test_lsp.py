"""LSP and LSPET ``joints.mat`` loaders on small files written here, value by value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from model_export.data import lsp
from model_export.data.people import DataError, lsp_records
from pose.layout import MPII_JOINTS

J = {name: i for i, name in enumerate(MPII_JOINTS)}


def lsp_order_joints(n: int, seed: int = 0) -> np.ndarray:
    """``(N, 14, 3)`` x, y (1-based, positive) and a 0 flag, in LSP's joint order."""
    rng = np.random.default_rng(seed)
    joints = np.zeros((n, 14, 3))
    joints[..., :2] = rng.uniform(5, 200, size=(n, 14, 2))
    return joints


def write_lsp(path: Path, joints: np.ndarray) -> Path:
    """LSP's layout: ``3 x 14 x N``."""
    savemat(path, {"joints": joints.transpose(2, 1, 0)})
    return path


def write_lspet(path: Path, joints: np.ndarray) -> Path:
    """LSPET's layout: ``14 x 3 x N``."""
    savemat(path, {"joints": joints.transpose(1, 2, 0)})
    return path


def test_both_layouts_read_to_the_same_array(tmp_path: Path) -> None:
    joints = lsp_order_joints(5)
    a = lsp.read_joints_mat(write_lsp(tmp_path / "a.mat", joints))
    b = lsp.read_joints_mat(write_lspet(tmp_path / "b.mat", joints))
    np.testing.assert_array_equal(a, joints)
    np.testing.assert_array_equal(b, joints)


def test_joint_mapping_to_mpii_order_value_by_value(tmp_path: Path) -> None:
    joints = lsp_order_joints(3)
    ann = lsp.load(write_lsp(tmp_path / "joints.mat", joints))
    names = [
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
        "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "upper_neck", "head_top",
    ]  # fmt: skip
    for lsp_index, name in enumerate(names):
        # 1-based MATLAB -> 0-based pixel centres
        np.testing.assert_array_equal(ann.joints[:, J[name]], joints[:, lsp_index, :2] - 1.0)
        assert ann.labelled[:, J[name]].all()


def test_pelvis_and_thorax_are_the_mid_points_of_hips_and_shoulders(tmp_path: Path) -> None:
    joints = lsp_order_joints(2)
    ann = lsp.load(write_lsp(tmp_path / "joints.mat", joints))
    np.testing.assert_allclose(ann.joints[:, J["pelvis"]], (joints[:, 2, :2] + joints[:, 3, :2]) / 2 - 1.0)
    np.testing.assert_allclose(ann.joints[:, J["thorax"]], (joints[:, 8, :2] + joints[:, 9, :2]) / 2 - 1.0)
    assert ann.labelled[:, J["pelvis"]].all() and ann.labelled[:, J["thorax"]].all()


def test_lsp_flag_means_occluded_and_keeps_the_joint(tmp_path: Path) -> None:
    joints = lsp_order_joints(2)
    joints[0, 6, 2] = 1.0  # right wrist occluded
    ann = lsp.load(write_lsp(tmp_path / "joints.mat", joints))
    assert ann.labelled.all()  # every LSP joint has a position, occluded or not
    assert ann.occluded[0, J["right_wrist"]] and ann.occluded.sum() == 1
    np.testing.assert_array_equal(ann.joints[0, J["right_wrist"]], joints[0, 6, :2] - 1.0)


def test_lspet_flag_means_visible_and_zero_is_unlabelled(tmp_path: Path) -> None:
    joints = lsp_order_joints(2)
    joints[..., 2] = 1.0
    joints[1, 0] = (0.0, -26.1, 0.0)  # right ankle: LSPET's placeholder for a joint not labelled
    joints[1, 9] = (-45.3, 0.0, 0.0)  # left shoulder
    ann = lsp.load(write_lspet(tmp_path / "joints.mat", joints))
    assert not ann.occluded.any()
    assert not ann.labelled[1, J["right_ankle"]] and not ann.labelled[1, J["left_shoulder"]]
    assert not ann.labelled[1, J["thorax"]]  # one of its shoulders is missing
    assert ann.labelled[1, J["pelvis"]] and ann.labelled[0].all()
    assert ann.labelled[1].sum() == 16 - 3


def test_the_convention_can_be_forced(tmp_path: Path) -> None:
    joints = lsp_order_joints(1)
    joints[0, :, 2] = 1.0
    path = write_lsp(tmp_path / "joints.mat", joints)
    assert lsp.load(path).occluded[0, lsp.LSP_TO_MPII].all()  # LSP layout: 1 = occluded
    assert not lsp.load(path, "visible").occluded.any()
    with pytest.raises(ValueError, match="convention"):
        lsp.convert(joints, "bogus")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("content", "message"),
    [({"joints": np.zeros((3, 13, 4))}, "shape"), ({"points": np.zeros((3, 14, 4))}, "no variable 'joints'")],
)
def test_malformed_files_name_the_problem(tmp_path: Path, content: dict, message: str) -> None:
    path = tmp_path / "joints.mat"
    savemat(path, content)
    with pytest.raises(lsp.LSPDataError, match=message):
        lsp.read_joints_mat(path)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(lsp.LSPDataError, match="not found"):
        lsp.read_joints_mat(tmp_path / "nothing.mat")
    (tmp_path / "text.mat").write_text("not matlab")
    with pytest.raises(lsp.LSPDataError, match="not a readable MATLAB file"):
        lsp.read_joints_mat(tmp_path / "text.mat")


def test_image_names_follow_each_set() -> None:
    assert lsp.image_name(0, 2000) == "im0001.jpg" and lsp.image_name(1999, 2000) == "im2000.jpg"
    assert lsp.image_name(0, 10000) == "im00001.jpg" and lsp.image_name(9999, 10000) == "im10000.jpg"


def test_records_of_a_folder(tmp_path: Path) -> None:
    joints = lsp_order_joints(4)
    joints[..., 2] = 1.0
    joints[2, :, 2] = 0.0  # LSPET: a person with no labelled joint is skipped
    (tmp_path / "images").mkdir()
    write_lspet(tmp_path / "joints.mat", joints)
    records = lsp_records(tmp_path, source="lspet")
    assert [r.image.name for r in records] == ["im0001.jpg", "im0002.jpg", "im0004.jpg"]
    assert all(r.alone and r.source == "lspet" for r in records)
    assert [r.image.name for r in lsp_records(tmp_path, [1])] == ["im0002.jpg"]
    with pytest.raises(DataError, match="outside"):
        lsp_records(tmp_path, [4])
    with pytest.raises(DataError, match="folder not found"):
        lsp_records(tmp_path / "missing")
