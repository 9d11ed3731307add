"""MPII Human Pose (Andriluka et al., CVPR 2014) in the annotation format of MMPose and the PyTorch ports.

Files (all paths are command-line flags, see :func:`add_arguments`):

- the images folder (``images/`` of ``mpii_human_pose_v1.tar.gz``);
- ``mpii_train.json`` / ``mpii_val.json``: a JSON list, one entry per person, with ``image`` (file
  name), ``joints`` (16 x [x, y] pixels), ``joints_vis`` (16 x 0/1), ``center`` ([x, y] pixels) and
  ``scale`` (the person box is ``200 * scale`` pixels high);
- ``mpii_gt_val.mat`` (``gt_valid.mat`` in HRNet): ``headboxes_src`` ``(2, 2, N)`` = (corner, x/y,
  person) with corner 0 the top-left and 1 the bottom-right head-box corner, ``pos_gt_src``
  ``(16, 2, N)`` and ``jnt_missing`` ``(16, N)``, N in the order of ``mpii_val.json``. A ``.npy`` or
  ``.json`` of head boxes ``(N, 4)`` ``[x1, y1, x2, y2]`` (or ``(N, 2, 2)``) works too.

Conventions, as read in MMPose's ``MpiiDataset._load_annotations`` and HRNet's ``lib/dataset/mpii.py``
(leoxiaobin/deep-high-resolution-net.pytorch) and ``evaluate``:

- coordinates in the JSON and in ``pos_gt_src`` are Matlab's, 1-based: we subtract 1 from joints and
  centre, which puts them in :mod:`pose.codec`'s convention (pixel centres at integers). HRNet adds
  the 1 back to its predictions before comparing with ``pos_gt_src``; distances are the same either way;
- the centre moves down by ``15 * scale`` pixels and the box grows by 1.25 "to avoid cropping limbs"
  (HRNet does both; MMPose shifts in ``_load_annotations`` and pads by 1.25 in ``GetBBoxCenterScale``);
- PCKh: head size = 0.6 x the head-box diagonal, a joint counts where it is not missing.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy.io import loadmat

from model_export.data.augment import AugmentConfig, default_codec, top_down_sample
from model_export.metrics import head_size_from_box
from pose.codec import HeatmapCodec
from pose.layout import MPII, MPII_JOINTS

NUM_JOINTS = len(MPII_JOINTS)
PIXEL_STD = 200.0  # the person box is PIXEL_STD * scale pixels high
CENTER_SHIFT = 15.0  # pixels per unit of scale, downwards
BOX_PADDING = 1.25  # box enlargement of the ports
MATLAB_OFFSET = 1.0  # 1-based -> 0-based

# Extra sample keys for scoring in the original image (see evaluation.evaluate).
SOURCE_KEYPOINTS = "source_keypoints"  # (K, 2) ground truth in source pixels
SOURCE_VISIBLE = "source_visible"  # (K,) joints that count for PCKh
SOURCE_HEAD_SIZE = "source_head_size"  # () 0.6 x head-box diagonal in source pixels


class MPIIDataError(Exception):
    """A missing or malformed MPII file; the message names the path and what belongs there."""


@dataclass(frozen=True)
class MPIIEntry:
    """One annotated person, in 0-based source pixels."""

    image: str
    joints: np.ndarray  # (16, 2)
    visible: np.ndarray  # (16,) bool
    center: np.ndarray  # (2,) after the port's downward shift
    box_size: float  # side of the square source box (200 * scale * 1.25)


@dataclass(frozen=True)
class HeadBoxes:
    """Validation head boxes and, from ``mpii_gt_val.mat``, the official ground truth."""

    boxes: np.ndarray  # (N, 4) x1, y1, x2, y2
    joints: np.ndarray | None = None  # (N, 16, 2), 0-based
    visible: np.ndarray | None = None  # (N, 16) bool

    @property
    def head_size(self) -> np.ndarray:
        return head_size_from_box(*self.boxes.T)


def require_file(path: str | Path | None, what: str, directory: bool = False) -> Path:
    """``path`` as a Path, or MPIIDataError naming it and what belongs there."""
    if path is None:
        raise MPIIDataError(f"no path given for {what}")
    path = Path(path)
    ok = path.is_dir() if directory else path.is_file()
    if not ok:
        kind = "folder" if directory else "file"
        raise MPIIDataError(f"{path}: {kind} not found; expected {what}")
    return path


def load_annotations(path: str | Path) -> list[MPIIEntry]:
    """Entries of ``mpii_train.json`` / ``mpii_val.json`` converted to 0-based pixels."""
    path = require_file(path, "an MPII annotation list (mpii_train.json / mpii_val.json, MMPose format)")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MPIIDataError(f"{path}: not valid JSON ({exc}); expected an MPII annotation list") from exc
    if not isinstance(raw, list) or not raw:
        raise MPIIDataError(f"{path}: expected a non-empty JSON list of MPII annotations")
    return [_entry(path, i, item) for i, item in enumerate(raw)]


def _entry(path: Path, index: int, item: object) -> MPIIEntry:
    where = f"{path}: entry {index}"
    if not isinstance(item, dict):
        raise MPIIDataError(f"{where} is not an object")
    missing = [k for k in ("image", "joints", "joints_vis", "center", "scale") if k not in item]
    if missing:
        raise MPIIDataError(f"{where} lacks {', '.join(missing)}")
    try:
        joints = np.asarray(item["joints"], np.float64).reshape(NUM_JOINTS, 2)
        visible = np.asarray(item["joints_vis"], np.float64).reshape(NUM_JOINTS) > 0
        center = np.asarray(item["center"], np.float64).reshape(2)
        scale = float(item["scale"])
    except (TypeError, ValueError) as exc:
        raise MPIIDataError(f"{where}: expected joints 16x2, joints_vis 16, center [x, y], scale ({exc})") from exc
    if scale <= 0:
        raise MPIIDataError(f"{where}: scale must be positive, got {scale}")
    if center[0] != -1:  # -1 marks "no centre" in the ports; they leave it unshifted
        center = center + np.array([0.0, CENTER_SHIFT * scale])
    return MPIIEntry(
        image=str(item["image"]),
        joints=joints - MATLAB_OFFSET,
        visible=visible,
        center=center - MATLAB_OFFSET,
        box_size=PIXEL_STD * scale * BOX_PADDING,
    )


def load_headboxes(path: str | Path) -> HeadBoxes:
    """Head boxes from ``mpii_gt_val.mat`` (with its ground truth) or a ``.npy`` / ``.json`` ``(N, 4)``."""
    what = "MPII validation head boxes (mpii_gt_val.mat with headboxes_src, or a .npy/.json of (N, 4) boxes)"
    path = require_file(path, what)
    suffix = path.suffix.lower()
    try:
        if suffix == ".mat":
            return _headboxes_from_mat(path)
        boxes = np.load(path) if suffix == ".npy" else np.asarray(json.loads(path.read_text()), np.float64)
    except MPIIDataError:
        raise
    except Exception as exc:  # any reader failure means a bad file for the user
        raise MPIIDataError(f"{path}: could not be read ({exc}); expected {what}") from exc
    boxes = np.asarray(boxes, np.float64)
    if boxes.ndim == 3 and boxes.shape[1:] == (2, 2):
        boxes = boxes.reshape(-1, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise MPIIDataError(f"{path}: head boxes have shape {boxes.shape}; expected (N, 4) x1, y1, x2, y2")
    return HeadBoxes(boxes=boxes)


def _headboxes_from_mat(path: Path) -> HeadBoxes:

    mat = loadmat(str(path))
    if "headboxes_src" not in mat:
        raise MPIIDataError(f"{path}: no 'headboxes_src' array; expected MPII's mpii_gt_val.mat")
    src = np.asarray(mat["headboxes_src"], np.float64)
    if src.ndim != 3 or src.shape[:2] != (2, 2):
        raise MPIIDataError(f"{path}: headboxes_src has shape {src.shape}; expected (2, 2, N)")
    boxes = np.concatenate([src[0].T, src[1].T], axis=1)  # (N, 4): top-left x, y, bottom-right x, y
    joints = visible = None
    if "pos_gt_src" in mat:
        pos = np.asarray(mat["pos_gt_src"], np.float64)
        if pos.shape != (NUM_JOINTS, 2, len(boxes)):
            raise MPIIDataError(f"{path}: pos_gt_src has shape {pos.shape}; expected (16, 2, {len(boxes)})")
        joints = pos.transpose(2, 0, 1) - MATLAB_OFFSET
        if "jnt_missing" in mat:
            visible = np.asarray(mat["jnt_missing"]).T == 0
        elif "jnt_visible" in mat:
            visible = np.asarray(mat["jnt_visible"]).T != 0
        if visible is not None and visible.shape != (len(boxes), NUM_JOINTS):
            raise MPIIDataError(f"{path}: joint visibility has shape {visible.T.shape}; expected (16, {len(boxes)})")
        if visible is None:
            joints = None
    return HeadBoxes(boxes=boxes, joints=joints, visible=visible)


class MPIIDataset:
    """Top-down MPII samples (the dict of :mod:`model_export.data.augment`).

    ``train=True`` draws the paper's augmentation per sample (rotation +/-30, scale 0.75-1.25,
    flip with the pairs swapped, colour jitter), deterministic in ``(seed, epoch, index)``;
    otherwise the crop is the plain one. With ``headboxes`` (validation) each sample also carries
    the ground truth in source pixels (``source_keypoints``, ``source_visible``,
    ``source_head_size``) for PCKh in the original image, the official ``pos_gt_src`` where the
    ``.mat`` has it. Without head boxes the head size is estimated as that of a square box whose
    side is the upper-neck to head-top distance (good for monitoring, not for reporting).
    """

    def __init__(
        self,
        images: str | Path,
        annotations: str | Path,
        headboxes: str | Path | None = None,
        train: bool = False,
        codec: HeatmapCodec | None = None,
        augment: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.images = require_file(images, "the MPII images folder (images/ of mpii_human_pose_v1)", directory=True)
        self.entries = load_annotations(annotations)
        self.heads = load_headboxes(headboxes) if headboxes is not None else None
        if self.heads is not None and len(self.heads.boxes) != len(self.entries):
            raise MPIIDataError(
                f"{headboxes}: {len(self.heads.boxes)} head boxes but {annotations} has "
                f"{len(self.entries)} entries; expected one head box per entry, in order"
            )
        self.train = train
        self.codec = codec or default_codec()
        self.augment = augment or AugmentConfig()
        self.seed = seed
        self.epoch = 0
        self.layout = MPII

    def __len__(self) -> int:
        return len(self.entries)

    def set_epoch(self, epoch: int) -> None:
        """Draw new augmentations: the random stream depends on (seed, epoch, index)."""
        self.epoch = int(epoch)

    def head_size(self, index: int) -> float:
        """0.6 x head-box diagonal in source pixels (estimated without head boxes)."""
        if self.heads is not None:
            return float(self.heads.head_size[index])
        joints = self.entries[index].joints
        neck, top = MPII_JOINTS.index("upper_neck"), MPII_JOINTS.index("head_top")
        side = float(np.linalg.norm(joints[top] - joints[neck]))
        return float(head_size_from_box(0.0, 0.0, side, side)) if side > 0 else 1.0

    def load_image(self, index: int) -> Image.Image:
        path = self.images / self.entries[index].image
        if not path.is_file():
            raise MPIIDataError(f"{path}: image not found; expected the MPII image named in the annotation list")
        with Image.open(path) as image:
            return image.convert("RGB")

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        entry = self.entries[index]
        rng = np.random.default_rng((self.seed, self.epoch, index)) if self.train else None
        sample = top_down_sample(
            self.load_image(index),
            entry.joints,
            entry.visible,
            entry.center,
            entry.box_size,
            self.head_size(index),
            codec=self.codec,
            rng=rng,
            config=self.augment,
            flip_index=self.layout.flip_index,
        )
        joints, visible = entry.joints, entry.visible
        if self.heads is not None and self.heads.joints is not None and self.heads.visible is not None:
            joints, visible = self.heads.joints[index], self.heads.visible[index]
        sample[SOURCE_KEYPOINTS] = joints.astype(np.float32)
        sample[SOURCE_VISIBLE] = visible.astype(np.float32)
        sample[SOURCE_HEAD_SIZE] = np.float32(self.head_size(index))
        return sample


def add_arguments(parser: argparse.ArgumentParser, splits: Sequence[str] = ("train", "val")) -> None:
    """The MPII path flags: ``--mpii-images``, ``--mpii-train`` / ``--mpii-val``, ``--mpii-headboxes``."""
    group = parser.add_argument_group("MPII data (with --dataset mpii)")
    group.add_argument("--mpii-images", metavar="DIR", help="folder of the MPII images")
    if "train" in splits:
        group.add_argument("--mpii-train", metavar="JSON", help="mpii_train.json (MMPose format)")
    if "val" in splits:
        group.add_argument("--mpii-val", metavar="JSON", help="mpii_val.json (MMPose format)")
        group.add_argument(
            "--mpii-headboxes", metavar="MAT", help="mpii_gt_val.mat (headboxes_src), or a .npy/.json of (N, 4) boxes"
        )


def dataset_from_args(args: Any, split: str, **kwargs: object) -> MPIIDataset:
    """The MPII train or val dataset named by the flags of :func:`add_arguments` (parsed, or a training config
    with the same names)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    annotations = getattr(args, f"mpii_{split}", None)
    if args.mpii_images is None:
        raise MPIIDataError("--mpii-images is required with --dataset mpii: the folder of the MPII images")
    if annotations is None:
        raise MPIIDataError(f"--mpii-{split} is required with --dataset mpii: the path of mpii_{split}.json")
    headboxes = getattr(args, "mpii_headboxes", None) if split == "val" else None
    return MPIIDataset(args.mpii_images, annotations, headboxes, train=split == "train", **kwargs)  # type: ignore[arg-type]
