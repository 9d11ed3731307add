"""COCO person keypoints (Lin et al., ECCV 2014) for evaluation: the 12 limb joints COCO shares with MPII.

A COCO keypoints file is one JSON object with ``images`` (``id``, ``file_name``, ``width``, ``height``),
``annotations`` (``image_id``, ``category_id``, ``bbox`` ``[x, y, w, h]``, ``keypoints`` 17 x
``(x, y, v)`` flattened, ``iscrowd``) and ``categories``. Conventions:

- the 17 keypoints come in COCO's order (:data:`COCO_KEYPOINTS`); left and right are the person's own;
- ``v`` is 0 for not labelled (x = y = 0), 1 for labelled but not visible, 2 for labelled and visible: a
  joint is scored when ``v > 0``, as COCO's OKS does;
- keypoint coordinates are pixel indices, which is this project's pixel-centre convention (Detectron2
  documents the same reading and adds 0.5 for its pixel-edge boxes); ``bbox`` is in pixel-edge coordinates,
  which is what the API's ``bbox`` takes, so it passes through unchanged;
- crowd regions (``iscrowd`` 1) and people without a labelled limb joint are left out.

COCO has no neck, head top, pelvis or thorax, so only the 12 limb joints map to MPII's order; the LSP
protocol's torso (left shoulder to right hip) is among them, so PCK@0.2 of the torso applies unchanged.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pose.layout import MPII_JOINTS

COCO_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
# COCO index -> MPII index for the joints both skeletons name (the same names in both layouts).
COCO_TO_MPII: dict[int, int] = {
    i: MPII_JOINTS.index(name) for i, name in enumerate(COCO_KEYPOINTS) if name in MPII_JOINTS
}
PERSON_CATEGORY = 1
# ``coco_subset``'s train2017 photos, divided once by a hash of the file name: about a third held out to pick
# models by (``train2017-val``), the rest trained on (``train2017-fit``). Its val2017 photos are never trained on.
TRAIN_SPLIT = "train2017"
TRAIN_FIT, TRAIN_VAL = "train2017-fit", "train2017-val"
HOLDOUT_EVERY = 3


class CocoDataError(Exception):
    """A missing or malformed COCO keypoints file; the message names the file and what was expected."""


@dataclass(frozen=True)
class CocoPerson:
    """One annotated person: joints in MPII order and 0-based pixel centres, the box in pixel edges."""

    image: str  # file name, relative to the images folder
    joints: np.ndarray  # (16, 2)
    labelled: np.ndarray  # (16,) bool: COCO's v > 0, and only the 12 shared limb joints
    box: tuple[float, float, float, float]  # (x, y, w, h)
    alone: bool  # the only person annotated in its image (crowd regions count as people)
    annotation_id: int | None = None
    area: float | None = None  # COCO's segment area (the OKS scale), when the file gives it


def to_mpii(keypoints: Any) -> tuple[np.ndarray, np.ndarray]:
    """COCO's flat 17 x (x, y, v) -> ``(joints (16, 2), labelled (16,))`` in MPII order."""
    try:
        flat = np.asarray(keypoints, np.float64)
    except (TypeError, ValueError) as exc:
        raise CocoDataError(f"keypoints must be 51 numbers (17 x, y, v), got {keypoints!r:.80}") from exc
    if flat.shape != (3 * len(COCO_KEYPOINTS),) or not np.isfinite(flat).all():
        raise CocoDataError(f"keypoints must be 51 finite numbers (17 x, y, v), got shape {flat.shape}")
    xyv = flat.reshape(len(COCO_KEYPOINTS), 3)
    joints = np.zeros((len(MPII_JOINTS), 2))
    labelled = np.zeros(len(MPII_JOINTS), bool)
    for coco, mpii in COCO_TO_MPII.items():
        if xyv[coco, 2] > 0:
            joints[mpii] = xyv[coco, :2]
            labelled[mpii] = True
    return joints, labelled


def splits_of(image: dict[str, Any]) -> tuple[str, ...]:
    """The split names an image entry belongs to: its ``coco_split`` and, for train2017, ``train2017-fit`` or
    ``train2017-val`` (a CRC-32 of the file name picks every :data:`HOLDOUT_EVERY`-th)."""
    split = image.get("coco_split")
    if split != TRAIN_SPLIT:
        return (split,) if split else ()
    held_out = zlib.crc32(str(image["file_name"]).encode()) % HOLDOUT_EVERY == 0
    return split, TRAIN_VAL if held_out else TRAIN_FIT


def load(path: str | Path, split: str | None = None) -> list[CocoPerson]:
    """The people of a COCO keypoints file, in the file's annotation order; with ``split``, only those of the
    images in that split (:func:`splits_of`: ``val2017``, the evaluation photos of ``coco_subset``;
    ``train2017-fit`` and ``train2017-val``, its training photos divided)."""
    path = Path(path)
    if not path.is_file():
        raise CocoDataError(f"{path}: file not found; expected a COCO person-keypoints JSON file")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CocoDataError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise CocoDataError(f"{path}: expected an object with 'images' and 'annotations' lists (COCO's format)")
    try:
        names = {
            image["id"]: str(image["file_name"])
            for image in data["images"]
            if split is None or split in splits_of(image)
        }
        annotations = [
            a
            for a in data.get("annotations", [])
            if a.get("category_id", PERSON_CATEGORY) == PERSON_CATEGORY and (split is None or a["image_id"] in names)
        ]
        per_image = Counter(a["image_id"] for a in annotations)
        people = []
        for a in annotations:
            if a.get("iscrowd", 0):
                continue
            if a["image_id"] not in names:
                raise CocoDataError(f"{path}: annotation {a.get('id')} names image {a['image_id']}, not listed")
            joints, labelled = to_mpii(a["keypoints"])
            if not labelled.any():
                continue
            x, y, w, h = (float(v) for v in a["bbox"])
            if not (w > 0 and h > 0):
                raise CocoDataError(f"{path}: annotation {a.get('id')} has bbox {a['bbox']}; expected [x, y, w, h]")
            alone = per_image[a["image_id"]] == 1
            area = float(a["area"]) if a.get("area") else None
            people.append(CocoPerson(names[a["image_id"]], joints, labelled, (x, y, w, h), alone, a.get("id"), area))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise CocoDataError(f"{path}: malformed COCO keypoints entry ({type(exc).__name__}: {exc})") from exc
    return people
