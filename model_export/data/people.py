"""Real photos of people, one annotated person per record, cropped the way the service crops them.

Every real source (LSP, LSPET, MPII in MMPose format; COCO keypoints for evaluation) becomes a list of
:class:`PersonRecord`; one :class:`PersonDataset` turns records into the training sample of
:mod:`model_export.data.augment`.

The crop matches ``POST /predict``. The person box is the annotated one (COCO's) or else the labelled
joints' bounding box (LSP has no annotated boxes, so it is what the evaluation passes as ``bbox``); the
service grows a box by :data:`~pose.geometry.BBOX_GROWTH` about its centre and letterboxes it,
which is the square of side 1.25 x the box's longer side. Training draws around that: the box centre
shifted and its size scaled (a user's box is never the annotator's), rotation and flip; and with
``whole_image_prob`` the whole photo letterboxed instead (the no-box path), for records alone in their
image. Padding is black, as in the service. Everyday photos cut people off at the frame: with
``truncate_prob`` a training crop moves the photo's edge across the person first (:func:`frame_cut`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from model_export.data import lsp
from model_export.data.augment import (
    AugmentConfig,
    CropParams,
    default_codec,
    paste_person,
    person_mask,
    top_down_sample,
)
from model_export.data.coco import CocoDataError, load
from model_export.data.mpii import MPIIDataError, load_annotations, require_file
from model_export.metrics import head_size_from_box
from pose.codec import HeatmapCodec
from pose.geometry import BBOX_GROWTH
from pose.layout import MPII, MPII_JOINTS

NUM_JOINTS = len(MPII_JOINTS)
# The LSP protocol's torso diameter: left shoulder to right hip (as in the LSP evaluation code of
# Johnson & Everingham and the DeepPose paper, Toshev & Szegedy 2014).
TORSO = (MPII_JOINTS.index("left_shoulder"), MPII_JOINTS.index("right_hip"))
HEAD = (MPII_JOINTS.index("upper_neck"), MPII_JOINTS.index("head_top"))
MIN_BOX_SIDE = 8.0  # pixels: a box from one or two joints still gets a usable size

# Extra sample keys (beside those of model_export.data.augment) for scoring.
TORSO_SIZE = "torso_size"  # () torso diameter in crop pixels, 0 where a torso joint is unlabelled


MIN_DISTRACTOR_JOINTS = 6  # a pasted person needs this many joints in view to look like one


class DataError(Exception):
    """A missing or malformed real-photo dataset; the message names the path and what belongs there."""


@dataclass(frozen=True)
class PersonRecord:
    """One annotated person in one photo, 0-based pixel-centre coordinates, MPII joint order."""

    image: Path
    joints: np.ndarray  # (16, 2)
    labelled: np.ndarray  # (16,) bool
    alone: bool = True  # the only annotated person in its image (a whole-image crop shows just them)
    source: str = ""
    person_box: tuple[float, float, float, float] | None = None  # an annotated box (COCO's), pixel edges
    area: float | None = None  # an annotated person area (COCO's segment area, the OKS scale)

    def box(self) -> tuple[float, float, float, float]:
        """The person box ``(x, y, w, h)`` in pixel-edge coordinates (the API's ``bbox``): the annotated one,
        else the labelled joints' bounding box."""
        return self.person_box if self.person_box is not None else joint_box(self.joints, self.labelled)

    def torso_size(self) -> float:
        """Left shoulder to right hip in pixels; 0 when either is unlabelled."""
        a, b = TORSO
        if not (self.labelled[a] and self.labelled[b]):
            return 0.0
        return float(np.linalg.norm(self.joints[a] - self.joints[b]))

    def head_size(self) -> float:
        """PCKh-style normaliser without a head box: 0.6 x the diagonal of a square whose side is neck-to-top."""
        a, b = HEAD
        if not (self.labelled[a] and self.labelled[b]):
            return 0.0
        side = float(np.linalg.norm(self.joints[a] - self.joints[b]))
        return float(head_size_from_box(0.0, 0.0, side, side))


def joint_box(joints: np.ndarray, labelled: np.ndarray) -> tuple[float, float, float, float]:
    """Bounding box ``(x, y, w, h)`` in pixel-edge coordinates of the labelled joints (centres + 0.5)."""
    points = np.asarray(joints, np.float64)[np.asarray(labelled, bool)]
    if len(points) == 0:
        raise DataError("a person with no labelled joint has no box")
    (x0, y0), (x1, y1) = points.min(axis=0) + 0.5, points.max(axis=0) + 0.5
    w, h = max(x1 - x0, MIN_BOX_SIDE), max(y1 - y0, MIN_BOX_SIDE)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return cx - w / 2, cy - h / 2, w, h


# frame_cut: which edge moves in (bottom, left, right, top) and how often; how much of the person stays
CUT_SIDES = ("bottom", "left", "right", "top")
CUT_SIDE_PROBS = (0.5, 0.2, 0.2, 0.1)
CUT_KEEP = (0.4, 0.85)
MIN_KEPT_JOINTS = 4


def frame_cut(
    joints: np.ndarray, labelled: np.ndarray, size: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """A random photo edge across the person: ``(labelled joints kept, kept region (x0, y0, x1, y1))`` in
    pixel edges of an image of ``size`` (width, height); None when fewer than :data:`MIN_KEPT_JOINTS` stay."""
    points = np.asarray(joints, np.float64)
    have = np.asarray(labelled, bool)
    if not have.any():
        return None
    x, y, w, h = joint_box(points, have)
    side = CUT_SIDES[int(rng.choice(len(CUT_SIDES), p=CUT_SIDE_PROBS))]
    keep = float(rng.uniform(*CUT_KEEP))
    width, height = size
    x0, y0, x1, y1 = 0, 0, width, height
    if side == "bottom":
        y1 = int(round(y + keep * h))
    elif side == "top":
        y0 = int(round(y + (1 - keep) * h))
    elif side == "left":
        x0 = int(round(x + (1 - keep) * w))
    else:
        x1 = int(round(x + keep * w))
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, width), min(y1, height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    inside = (points[:, 0] + 0.5 >= x0) & (points[:, 0] + 0.5 <= x1) & (points[:, 1] + 0.5 >= y0)
    inside &= points[:, 1] + 0.5 <= y1
    kept = have & inside
    return (kept, (x0, y0, x1, y1)) if kept.sum() >= MIN_KEPT_JOINTS else None


def clip_box(box: Sequence[float], region: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    """``box`` (x, y, w, h) intersected with ``region`` (x0, y0, x1, y1); at least :data:`MIN_BOX_SIDE`."""
    x, y, w, h = box
    x0, y0 = max(x, region[0]), max(y, region[1])
    x1, y1 = min(x + w, region[2]), min(y + h, region[3])
    return x0, y0, max(x1 - x0, MIN_BOX_SIDE), max(y1 - y0, MIN_BOX_SIDE)


def box_square(box: Sequence[float]) -> tuple[np.ndarray, float]:
    """The service's crop of ``box``: centre in pixel-centre coordinates and the side of the letterboxed square."""
    x, y, w, h = box
    return np.array([x + w / 2 - 0.5, y + h / 2 - 0.5]), BBOX_GROWTH * max(w, h)


def whole_image_square(size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """The service's no-box crop: the whole ``(width, height)`` image letterboxed."""
    width, height = size
    return np.array([width / 2 - 0.5, height / 2 - 0.5]), float(max(width, height))


# ---------------------------------------------------------------- sources
def lsp_records(folder: str | Path, indices: Sequence[int] | None = None, source: str = "lsp") -> list[PersonRecord]:
    """Records of an LSP or LSPET folder (``joints.mat`` + ``images/``); ``indices`` are 0-based image numbers."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found; expected an LSP/LSPET folder with joints.mat and images/")
    try:
        ann = lsp.load(folder / "joints.mat")
    except lsp.LSPDataError as exc:
        raise DataError(str(exc)) from exc
    images = folder / "images"
    chosen = range(len(ann)) if indices is None else indices
    records = []
    for i in chosen:
        if not 0 <= i < len(ann):
            raise DataError(f"{folder}: image index {i} outside the {len(ann)} annotated images")
        if not ann.labelled[i].any():
            continue
        records.append(PersonRecord(images / lsp.image_name(i, len(ann)), ann.joints[i], ann.labelled[i], True, source))
    return records


def mpii_records(images: str | Path, annotations: str | Path, source: str = "mpii") -> list[PersonRecord]:
    """Records of an MMPose-style MPII list (joints only: no head boxes, centres or scales are needed)."""
    try:
        folder = require_file(images, "the MPII images folder", directory=True)
        entries = load_annotations(annotations)
    except MPIIDataError as exc:
        raise DataError(str(exc)) from exc
    per_image: dict[str, int] = {}
    for entry in entries:
        per_image[entry.image] = per_image.get(entry.image, 0) + 1
    return [
        PersonRecord(folder / e.image, e.joints, e.visible, per_image[e.image] == 1, source)
        for e in entries
        if e.visible.any()
    ]


def coco_records(
    annotations: str | Path, images: str | Path, source: str = "coco", split: str | None = None
) -> list[PersonRecord]:
    """Records of a COCO person-keypoints file (the 12 limb joints, COCO's person boxes); images in ``images``;
    ``split`` keeps the photos of one ``coco_split`` only."""
    folder = Path(images)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found; expected the COCO images the annotations name")
    try:
        people = load(annotations, split)
    except CocoDataError as exc:
        raise DataError(str(exc)) from exc
    return [PersonRecord(folder / p.image, p.joints, p.labelled, p.alone, source, p.box, p.area) for p in people]


def read_mirrored(path: str | Path) -> tuple[str, list[str]]:
    """``(source, image file names)`` of a list written by ``python -m model_export label-audit``."""
    try:
        report = json.loads(Path(path).read_text())
        return str(report["source"]), [str(name) for name in report["mirrored"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a label-audit list (source, mirrored) ({exc})") from exc


def mirror_labels(records: Sequence[PersonRecord], names: Sequence[str]) -> list[PersonRecord]:
    """``records`` with the left and right labels swapped for the people whose image file name is in ``names``
    (each name must be one of theirs: a list made for another source or split is an error)."""
    wanted = set(names)
    found = {r.image.name for r in records} & wanted
    if found != wanted:
        raise DataError(f"{len(wanted - found)} of the {len(wanted)} mirrored images are not among these people")
    flip = list(MPII.flip_index)
    return [
        replace(r, joints=r.joints[flip], labelled=r.labelled[flip]) if r.image.name in wanted else r for r in records
    ]


def cut_to(image: Image.Image, region: tuple[int, int, int, int]) -> Image.Image:
    """``image`` black outside ``region`` (x0, y0, x1, y1): the photo's frame where the region ends."""
    out = Image.new(image.mode, image.size)
    out.paste(image.crop(region), region[:2])
    return out


# ---------------------------------------------------------------- the dataset
REAL_AUGMENT = AugmentConfig(
    rotation=30.0,
    rotation_prob=0.6,
    scale=(0.75, 1.3),
    flip_prob=0.5,
    shift=0.08,
    shift_prob=1.0,
    color=0.25,
)
WHOLE_IMAGE_AUGMENT = AugmentConfig(
    rotation=15.0, rotation_prob=0.4, scale=(0.9, 1.1), flip_prob=0.5, shift=0.03, shift_prob=1.0, color=0.25
)


@dataclass
class PersonDataset:
    """Training or evaluation samples of person records (map-style; works with a DataLoader).

    ``train=True`` draws a fresh crop per (seed, epoch, index): the box-jittered person crop, or with
    ``whole_image_prob`` the whole photo. ``train=False`` gives the service's exact crop: the joints'
    box grown by 25%, or the whole image with ``whole_image=True``.
    """

    records: Sequence[PersonRecord]
    train: bool = False
    codec: HeatmapCodec = field(default_factory=default_codec)
    augment: AugmentConfig = REAL_AUGMENT
    whole_augment: AugmentConfig = WHOLE_IMAGE_AUGMENT
    whole_image_prob: float = 0.0
    truncate_prob: float = 0.0
    distractor_prob: float = 0.0  # chance of another person of the set pasted beside the crop's (:func:`paste_person`)
    whole_image: bool = False
    seed: int = 0
    epoch: int = 0
    layout = MPII

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def load_image(self, index: int) -> Image.Image:
        path = self.records[index].image
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except FileNotFoundError as exc:
            raise DataError(f"{path}: image not found") from exc

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        record = self.records[index]
        image = self.load_image(index)
        rng = np.random.default_rng((self.seed, self.epoch, index)) if self.train else None
        whole = self.whole_image
        if rng is not None:
            whole = record.alone and rng.random() < self.whole_image_prob
        labelled, box = record.labelled, None if whole else record.box()
        if box is not None and rng is not None and self.truncate_prob > 0 and rng.random() < self.truncate_prob:
            cut = frame_cut(record.joints, record.labelled, image.size, rng)
            if cut is not None:
                labelled, region = cut
                image = cut_to(image, region)
                box = joint_box(record.joints, labelled)
                if record.person_box is not None:
                    box = clip_box(record.person_box, region)
        centre, side = whole_image_square(image.size) if box is None else box_square(box)
        config = self.whole_augment if whole else self.augment
        sample = top_down_sample(
            image,
            record.joints,
            labelled,
            centre,
            side,
            record.head_size(),
            codec=self.codec,
            rng=rng,
            config=config,
            flip_index=self.layout.flip_index,
        )
        distract = rng is not None and not whole and self.distractor_prob > 0 and len(self) > 1
        if distract and rng.random() < self.distractor_prob:
            sample["image"] = self.with_distractor(sample["image"], index, rng)
        # in the un-augmented crop's pixels: exact for evaluation samples (train=False)
        sample[TORSO_SIZE] = np.float32(record.torso_size() * self.codec.input_size[0] / side)
        return sample

    def with_distractor(self, pixels: np.ndarray, index: int, rng: np.random.Generator) -> np.ndarray:
        """The (3, H, W) crop with another person of the set pasted beside its own (cut out along their joints);
        unchanged when that person has fewer than :data:`MIN_DISTRACTOR_JOINTS` joints in their crop."""
        other = int(rng.integers(len(self) - 1))
        other += other >= index
        record = self.records[other]
        centre, side = box_square(record.box())
        person = top_down_sample(
            self.load_image(other),
            record.joints,
            record.labelled,
            centre,
            side,
            record.head_size(),
            codec=self.codec,
            params=CropParams(flip=bool(rng.random() < 0.5)),
            flip_index=self.layout.flip_index,
        )
        shown = person["visible"] > 0
        if shown.sum() < MIN_DISTRACTOR_JOINTS:
            return pixels
        mask = person_mask(self.codec.input_size, person["keypoints"], shown, self.layout)
        pasted = paste_person(pixels.transpose(1, 2, 0), person["image"].transpose(1, 2, 0), mask, rng)
        return np.ascontiguousarray(pasted.transpose(2, 0, 1), dtype=np.float32)
