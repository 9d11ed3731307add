"""PCKh on hand-made predictions whose scores were worked out by hand (see the comments)."""

from __future__ import annotations

import numpy as np
import pytest

from model_export.metrics import head_size_from_box, pckh
from pose.layout import MPII, MPII_JOINTS

K = len(MPII_JOINTS)
PELVIS, THORAX = MPII_JOINTS.index("pelvis"), MPII_JOINTS.index("thorax")


def hand_made() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two figures with known errors.

    Figure 0: head size 50 -> radius 25 px at PCKh@0.5, 5 px at PCKh@0.1.
    Figure 1: head size 100 -> radius 50 px at PCKh@0.5, 10 px at PCKh@0.1.
    """
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 200, size=(2, K, 2)).astype(np.float64)
    offset = np.zeros((2, K, 2))
    visible = np.ones((2, K), bool)
    # figure 0
    offset[0, 0] = (15, 20)  # 25 px: exactly on the 0.5 radius -> hit@0.5, miss@0.1
    offset[0, 1] = (0, 26)  # 26 px: miss, miss
    offset[0, 2] = (3, 4)  # 5 px: exactly on the 0.1 radius -> hit, hit
    offset[0, 3] = (0, 5.5)  # hit@0.5, miss@0.1
    offset[0, 4] = (100, 100)  # far off but invisible: not counted
    visible[0, 4] = False
    offset[0, PELVIS] = (1000, 0)  # pelvis and thorax wrong: miss, miss
    offset[0, THORAX] = (0, -1000)
    # figure 1
    offset[1, 0] = (0, 50.5)  # miss, miss
    offset[1, 1] = (30, 40)  # 50 px: exactly on the 0.5 radius -> hit@0.5, miss@0.1
    offset[1, 5] = (6, 8)  # 10 px: exactly on the 0.1 radius -> hit, hit
    visible[1, 10] = False  # right wrist exact but invisible: not counted
    head = np.array([50.0, 100.0])
    return gt + offset, gt, visible, head


def test_pckh_at_half_head_matches_hand_count() -> None:
    pred, gt, visible, head = hand_made()
    result = pckh(pred, gt, visible, head, threshold=0.5)
    expected = np.ones(K)
    expected[[0, 1, PELVIS, THORAX]] = 0.5
    np.testing.assert_allclose(result.per_joint, expected)
    counts = np.full(K, 2)
    counts[[4, 10]] = 1
    np.testing.assert_array_equal(result.counts, counts)
    # 14 scored kinds: 26 visible joints, of which 24 are hits (r-ankle and r-knee miss once each)
    assert result.mean == pytest.approx(24 / 26)


def test_pckh_at_tenth_head_matches_hand_count() -> None:
    pred, gt, visible, head = hand_made()
    result = pckh(pred, gt, visible, head, threshold=0.1)
    expected = np.ones(K)
    expected[[0, 1]] = 0.0
    expected[[3, PELVIS, THORAX]] = 0.5
    np.testing.assert_allclose(result.per_joint, expected)
    # misses among the 26 scored joints: r-ankle x2, r-knee x2, r-hip once -> 21 hits
    assert result.mean == pytest.approx(21 / 26)


def test_mean_ignores_pelvis_and_thorax() -> None:
    pred, gt, visible, head = hand_made()
    fixed = pred.copy()
    fixed[:, [PELVIS, THORAX]] = gt[:, [PELVIS, THORAX]]
    before = pckh(pred, gt, visible, head, layout=MPII)
    after = pckh(fixed, gt, visible, head, layout=MPII)
    assert after.per_joint[PELVIS] == 1.0 and before.per_joint[PELVIS] == 0.5
    assert after.mean == before.mean


def test_invisible_joints_are_ignored_whatever_their_prediction() -> None:
    pred, gt, visible, head = hand_made()
    moved = pred.copy()
    moved[0, 4] = (np.nan, np.nan)
    moved[1, 10] = (1e6, -1e6)
    a, b = pckh(pred, gt, visible, head), pckh(moved, gt, visible, head)
    np.testing.assert_array_equal(a.per_joint, b.per_joint)
    assert a.mean == b.mean


def test_joint_never_visible_is_nan_and_leaves_the_mean_alone() -> None:
    pred, gt, visible, head = hand_made()
    visible[:, 9] = False
    result = pckh(pred, gt, visible, head)
    assert np.isnan(result.per_joint[9]) and result.counts[9] == 0
    assert result.mean == pytest.approx(22 / 24)  # head top was two hits out of two


def test_every_prediction_right_or_wrong() -> None:
    _, gt, visible, head = hand_made()
    assert pckh(gt, gt, visible, head).mean == 1.0
    assert pckh(gt + 1000.0, gt, visible, head).mean == 0.0


def test_head_size_is_six_tenths_of_the_box_diagonal() -> None:
    assert float(head_size_from_box(10, 20, 40, 60)) == pytest.approx(0.6 * 50)
    np.testing.assert_allclose(head_size_from_box(np.zeros(2), np.zeros(2), np.array([3, 6]), np.array([4, 8])), [3, 6])


def test_table_lists_every_joint_and_the_mean() -> None:
    pred, gt, visible, head = hand_made()
    table = pckh(pred, gt, visible, head).table(MPII)
    lines = table.splitlines()
    assert len(lines) == K + 2
    assert lines[-1].startswith("Mean") and f"{24 / 26:.4f}" in lines[-1]
    assert all(name in table for name in MPII_JOINTS)


@pytest.mark.parametrize(
    ("pred_shape", "vis_shape", "head_shape"),
    [((2, K, 3), (2, K), (2,)), ((2, K, 2), (2, K - 1), (2,)), ((2, K, 2), (2, K), (3,))],
)
def test_bad_shapes_are_rejected(pred_shape: tuple, vis_shape: tuple, head_shape: tuple) -> None:
    gt = np.zeros((2, K, 2)) if pred_shape[2] == 2 else np.zeros(pred_shape)
    with pytest.raises(ValueError):
        pckh(np.zeros(pred_shape), gt, np.ones(vis_shape, bool), np.ones(head_shape))


def test_non_positive_head_size_is_rejected() -> None:
    pred, gt, visible, head = hand_made()
    head[1] = 0.0
    with pytest.raises(ValueError, match="head"):
        pckh(pred, gt, visible, head)
