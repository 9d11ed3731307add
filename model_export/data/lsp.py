"""Leeds Sports Pose (LSP, Johnson & Everingham, BMVC 2010) and LSP Extended (LSPET, CVPR 2011).

Both ship a ``joints.mat`` with one variable ``joints`` holding, per image, 14 joints as (x, y, flag)
in MATLAB's 1-based pixel coordinates, in this order: right ankle, right knee, right hip, left hip,
left knee, left ankle, right wrist, right elbow, right shoulder, left shoulder, left elbow, left wrist,
neck, head top. Left and right are the person's own. The two sets differ in layout and in the flag:

======  ===============  ===================================================================
set     array layout     third value
======  ===============  ===================================================================
LSP     ``3 x 14 x N``   occlusion: 1 = occluded, 0 = visible; every joint has a position
LSPET   ``14 x 3 x N``   visibility: 1 = visible; 0 = not labelled (placeholder x, y <= 0)
======  ===============  ===================================================================

The joints are mapped to the 16-joint MPII order of :mod:`pose.layout` (neck -> ``upper_neck``).
LSP has no pelvis or thorax: they are **derived**, pelvis as the mid-point of the hips and thorax as the
mid-point of the shoulders, labelled only where both parents are (MPII's pelvis sits between the hips;
its thorax lies a little below the shoulder line, so the derived thorax is slightly high). The LSP
PCK@0.2 protocol never scores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy.io import loadmat

from pose.layout import MPII_JOINTS

LSP_JOINTS: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "upper_neck",  # LSP's "neck"
    "head_top",
)
LSP_TO_MPII: tuple[int, ...] = tuple(MPII_JOINTS.index(name) for name in LSP_JOINTS)
# Derived MPII joints: (joint, the two joints whose mid-point stands in for it).
DERIVED: tuple[tuple[str, str, str], ...] = (
    ("pelvis", "right_hip", "left_hip"),
    ("thorax", "right_shoulder", "left_shoulder"),
)
MATLAB_OFFSET = 1.0  # 1-based -> the project's 0-based pixel centres
LSP_TEST = range(1000, 2000)  # im1001 .. im2000: the standard test split (0-based indices)

FlagConvention = Literal["occluded", "visible"]


class LSPDataError(Exception):
    """A missing or malformed ``joints.mat``; the message names the file and what was expected."""


@dataclass(frozen=True)
class LSPAnnotations:
    """Every image's joints in MPII order, 0-based pixels."""

    joints: np.ndarray  # (N, 16, 2) float64
    labelled: np.ndarray  # (N, 16) bool: the joint has a real position
    occluded: np.ndarray  # (N, 16) bool: labelled but marked occluded (LSP's flag; always False for LSPET)

    def __len__(self) -> int:
        return len(self.joints)


def read_joints_mat(path: str | Path) -> np.ndarray:
    """The ``joints`` array of an LSP or LSPET ``joints.mat`` as ``(N, 14, 3)``, whichever layout it has."""
    return _read(path)[0]


def _read(path: str | Path) -> tuple[np.ndarray, FlagConvention]:
    """``(N, 14, 3)`` joints and the flag meaning the file's layout implies (3x14xN: LSP, 14x3xN: LSPET)."""
    path = Path(path)
    if not path.is_file():
        raise LSPDataError(f"{path}: file not found; expected an LSP/LSPET joints.mat")

    try:
        mat = loadmat(str(path))
    except Exception as exc:  # scipy raises several types for a file that is not a .mat
        raise LSPDataError(f"{path}: not a readable MATLAB file ({exc})") from exc
    if "joints" not in mat:
        raise LSPDataError(f"{path}: no variable 'joints'; expected LSP's 3x14xN or LSPET's 14x3xN array")
    raw = np.asarray(mat["joints"], np.float64)
    if raw.ndim == 3 and raw.shape[:2] == (3, 14):
        return raw.transpose(2, 1, 0), "occluded"
    if raw.ndim == 3 and raw.shape[:2] == (14, 3):
        return raw.transpose(2, 0, 1), "visible"
    raise LSPDataError(f"{path}: 'joints' has shape {raw.shape}; expected 3x14xN (LSP) or 14x3xN (LSPET)")


def convert(raw: np.ndarray, convention: FlagConvention) -> LSPAnnotations:
    """``(N, 14, 3)`` LSP-order (x, y, flag), 1-based -> :class:`LSPAnnotations` in MPII order."""
    raw = np.asarray(raw, np.float64)
    if raw.ndim != 3 or raw.shape[1:] != (14, 3):
        raise LSPDataError(f"expected (N, 14, 3) joints, got {raw.shape}")
    xy, flag = raw[..., :2] - MATLAB_OFFSET, raw[..., 2]
    finite = np.isfinite(xy).all(axis=-1)
    if convention == "occluded":
        labelled14, occluded14 = finite, finite & (flag > 0)
    elif convention == "visible":
        labelled14, occluded14 = finite & (flag > 0), np.zeros_like(finite)
    else:
        raise ValueError(f"convention must be 'occluded' (LSP) or 'visible' (LSPET), got {convention!r}")
    n = len(raw)
    joints = np.zeros((n, len(MPII_JOINTS), 2))
    labelled = np.zeros((n, len(MPII_JOINTS)), bool)
    occluded = np.zeros((n, len(MPII_JOINTS)), bool)
    joints[:, LSP_TO_MPII] = np.where(labelled14[..., None], xy, 0.0)
    labelled[:, LSP_TO_MPII] = labelled14
    occluded[:, LSP_TO_MPII] = occluded14
    for name, a, b in DERIVED:
        k, ia, ib = MPII_JOINTS.index(name), MPII_JOINTS.index(a), MPII_JOINTS.index(b)
        both = labelled[:, ia] & labelled[:, ib]
        joints[:, k] = np.where(both[:, None], 0.5 * (joints[:, ia] + joints[:, ib]), 0.0)
        labelled[:, k] = both
    return LSPAnnotations(joints=joints, labelled=labelled, occluded=occluded)


def load(path: str | Path, convention: FlagConvention | None = None) -> LSPAnnotations:
    """Read a ``joints.mat``; the flag convention follows the layout unless given (LSP: occluded, LSPET: visible)."""
    raw, implied = _read(path)
    return convert(raw, convention or implied)


def image_name(index: int, count: int) -> str:
    """File name of image ``index`` (0-based): ``im0001.jpg`` in LSP (2,000), ``im00001.jpg`` in LSPET (10,000)."""
    digits = 4 if count <= 9999 else 5
    return f"im{index + 1:0{digits}d}.jpg"
