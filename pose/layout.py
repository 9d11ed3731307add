"""Keypoint layout: joint names, left/right flip pairs and limb edges.

One definition for training, export and serving. Pure Python (no numpy, no torch)
so that every part of the project can import it.
"""

from __future__ import annotations

from dataclasses import dataclass

MPII_JOINTS: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
)

MPII_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))

# Limbs drawn between joints, as index pairs into MPII_JOINTS.
MPII_SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1),  # right shin
    (1, 2),  # right thigh
    (2, 6),  # right hip - pelvis
    (6, 3),  # pelvis - left hip
    (3, 4),  # left thigh
    (4, 5),  # left shin
    (6, 7),  # spine
    (7, 8),  # neck
    (8, 9),  # head
    (10, 11),  # right forearm
    (11, 12),  # right upper arm
    (12, 7),  # right shoulder - thorax
    (7, 13),  # thorax - left shoulder
    (13, 14),  # left upper arm
    (14, 15),  # left forearm
)

# RGB per body side, for every picture of a skeleton: the service's overlay, the training previews and the demo page
# (service/http/static/index.html restates them in CSS).
SIDE_COLOURS: dict[str, tuple[int, int, int]] = {
    "left": (56, 132, 255),
    "right": (255, 122, 26),
    "center": (40, 200, 120),
}


@dataclass(frozen=True)
class KeypointLayout:
    """Names, mirror pairs and limbs of one keypoint set."""

    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        k = len(self.names)
        if k == 0:
            raise ValueError("a keypoint layout needs at least one joint")
        if len(set(self.names)) != k:
            raise ValueError("keypoint names must be unique")
        for a, b in (*self.flip_pairs, *self.skeleton):
            if not (0 <= a < k and 0 <= b < k):
                raise ValueError(f"joint index pair ({a}, {b}) is outside 0..{k - 1}")

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def flip_index(self) -> list[int]:
        """Permutation that maps each joint to its mirror image (itself if unpaired)."""
        index = list(range(self.num_joints))
        for a, b in self.flip_pairs:
            index[a], index[b] = b, a
        return index

    def side(self, joint: int) -> str:
        """'left', 'right' or 'center', from the joint's name."""
        name = self.names[joint]
        if name.startswith("left"):
            return "left"
        if name.startswith("right"):
            return "right"
        return "center"

    def limb_side(self, a: int, b: int) -> str:
        """Side of a limb: the side its joints share, else 'center'."""
        sa, sb = self.side(a), self.side(b)
        if sa == sb:
            return sa
        return sa if sb == "center" else sb if sa == "center" else "center"

    @classmethod
    def default_for(cls, num_joints: int) -> KeypointLayout:
        """MPII for 16 joints, else generic names `joint_0..joint_{K-1}` with no pairs."""
        if num_joints == len(MPII_JOINTS):
            return MPII
        return cls(names=tuple(f"joint_{i}" for i in range(num_joints)))


MPII = KeypointLayout(names=MPII_JOINTS, flip_pairs=MPII_FLIP_PAIRS, skeleton=MPII_SKELETON)

# Joints left out of the MPII PCKh mean (the standard protocol excludes them).
MPII_PCKH_EXCLUDED: tuple[str, ...] = ("pelvis", "thorax")
