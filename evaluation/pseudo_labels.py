"""`python -m model_export pseudo-label`: a pseudo-labelled set of photos of people, made reproducibly.

Photos (a folder) -> people (the service's person detector as it runs on whole photos, or the person boxes of a
COCO file) -> the teacher's 17 keypoints for each (:mod:`model_export.teacher`) -> a folder in COCO's
person-keypoints format that training reads as its ``pseudo`` source (``--pseudo OUT``):

- ``OUT/person_keypoints.json``: ``images`` (with each photo's SHA-256), ``annotations`` (the box, the keypoints
  whose teacher score passes ``--min-keypoint-score`` with ``v`` 2 and the rest ``v`` 0, the detector's score and
  the teacher's 17 scores), ``categories``;
- ``OUT/images/``: links to the photos (nothing is copied);
- ``OUT/manifest.json``: where the photos came from and under which licence (``--source``, required), the
  teacher's and detector's files and SHA-256s, the thresholds, the counts and the command.

With ``--check COCO_JSON`` the teacher first labels the people of a labelled COCO file (with their own boxes) and
the manifest records its PCK@0.2 of the 12 limb joints there: how far its labels can be trusted.

It lives above both the service and ``model_export`` (like the evaluation) because it runs the service's detector
and image decoding with ``model_export``'s teacher. Nothing it writes belongs in the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluation import served
from model_export.data.coco import COCO_KEYPOINTS, COCO_TO_MPII, PERSON_CATEGORY
from model_export.data.people import DataError, PersonRecord, coco_records
from model_export.provenance import stamp
from model_export.teacher import Teacher, TeacherError
from pose.errors import PoseError
from pose.geometry import Box
from service.imaging.decode import DecodedImage, decode_rgb, open_image
from service.inference.detector import PersonDetector
from service.inference.runtime import ModelLoadError

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
MAX_PIXELS = 50_000_000
LIMB_JOINTS = tuple(sorted(COCO_TO_MPII))  # COCO indices of the 12 limb joints the pose model is scored on
DEFAULT_TEACHER = Path.home() / ".cache" / "hourglass-serve" / "movenet" / "movenet-thunder.json"
SOURCE_FIELDS = ("name", "origin", "licence")


class PseudoLabelError(Exception):
    """Inputs the tool cannot use: a missing folder, a source without a licence, a teacher that will not load."""


@dataclass(frozen=True)
class Thresholds:
    min_keypoint_score: float = 0.3  # a keypoint below it is left unlabelled (v = 0)
    min_limbs: int = 6  # a person is kept with at least this many of the 12 limb joints labelled
    min_box_side: float = 48.0  # people whose box's longer side is shorter (pixels) are too small to label


def read_source(path: Path) -> dict[str, Any]:
    """The photos' provenance: a JSON object with at least ``name``, ``origin`` (where they were taken from: a
    repository and commit, a package, a site) and ``licence``."""
    try:
        source = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PseudoLabelError(f"--source {path}: not a readable JSON file ({exc})") from exc
    if not isinstance(source, dict) or any(not str(source.get(field, "")).strip() for field in SOURCE_FIELDS):
        raise PseudoLabelError(
            f"--source {path}: needs non-empty {', '.join(SOURCE_FIELDS)} (photos without a "
            "stated licence are not labelled)"
        )
    return source


def find_photos(folder: Path) -> list[Path]:
    """Every photo under ``folder``, in a stable order."""
    if not folder.is_dir():
        raise PseudoLabelError(f"--photos {folder}: folder not found")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def coco_annotation(
    annotation_id: int,
    image_id: int,
    box: Box,
    score: float | None,
    keypoints: np.ndarray,
    scores: np.ndarray,
    thresholds: Thresholds,
) -> dict[str, Any] | None:
    """One person's COCO annotation (keypoints as pixel indices, the project's pixel centres), or None when too
    few limb joints pass the score threshold."""
    kept = scores >= thresholds.min_keypoint_score
    if sum(bool(kept[i]) for i in LIMB_JOINTS) < thresholds.min_limbs:
        return None
    flat: list[float] = []
    for (x, y), keep in zip(keypoints, kept, strict=True):
        flat += [round(float(x), 2), round(float(y), 2), 2] if keep else [0.0, 0.0, 0]
    x, y, w, h = (round(float(v), 2) for v in box)
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": PERSON_CATEGORY,
        "bbox": [x, y, w, h],
        "area": round(w * h, 2),
        "iscrowd": 0,
        "keypoints": flat,
        "num_keypoints": int(kept.sum()),
        "score": None if score is None else round(float(score), 4),
        "keypoint_scores": [round(float(s), 4) for s in scores],
    }


def given_boxes(path: Path) -> dict[str, list[Box]]:
    """File name -> the person boxes of a COCO file (crowd regions left out)."""
    try:
        spec = json.loads(path.read_text())
        names = {image["id"]: image["file_name"] for image in spec["images"]}
        boxes: dict[str, list[Box]] = {}
        for a in spec["annotations"]:
            if a.get("category_id", PERSON_CATEGORY) == PERSON_CATEGORY and not a.get("iscrowd", 0):
                boxes.setdefault(names[a["image_id"]], []).append(tuple(float(v) for v in a["bbox"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PseudoLabelError(f"--boxes {path}: not a COCO file with images and person boxes ({exc})") from exc
    return boxes


def teacher_points(teacher: Teacher, record: PersonRecord) -> np.ndarray:
    """The teacher's keypoints for a labelled person (given its box) as ``(16, 2)`` points in MPII's order; the
    joints COCO has no keypoint for (neck, head top, pelvis, thorax) stay at 0."""
    image = np.asarray(decode_rgb(open_image(record.image.read_bytes(), MAX_PIXELS)).image)
    labels = teacher.label(image, record.box())
    points = np.zeros((len(record.joints), 2))
    for coco, mpii in COCO_TO_MPII.items():
        points[mpii] = labels.keypoints[coco]
    return points


def teacher_check(teacher: Teacher, annotations: Path, images: Path, split: str | None) -> dict[str, Any]:
    """The teacher's PCK@0.2 (of the torso) over the 12 limb joints of a labelled COCO file, with its boxes."""
    records = [r for r in coco_records(annotations, images, split=split) if r.torso_size() > 0]
    hits = scored = 0
    for record in records:
        points = teacher_points(teacher, record)
        for mpii in COCO_TO_MPII.values():
            if record.labelled[mpii]:
                scored += 1
                hits += bool(np.linalg.norm(points[mpii] - record.joints[mpii]) <= 0.2 * record.torso_size())
    return {
        "annotations": str(annotations),
        "split": split,
        "people": len(records),
        "joints": scored,
        "pck_0.2_limbs": round(hits / scored, 4) if scored else None,
    }


FindPeople = Callable[[str, DecodedImage], list[tuple[Box, float | None]]]


def people_in_boxes(boxes: dict[str, list[Box]]) -> FindPeople:
    """The people of a photo are the given boxes of its file name (no score)."""
    return lambda name, decoded: [(box, None) for box in boxes.get(name, [])]


def people_detected(detector: PersonDetector, max_people: int) -> FindPeople:
    """The people of a photo are what the service's detector finds in it, with their scores."""
    return lambda name, decoded: [(found.box, found.score) for found in detector.detect(decoded, max_people)]


def label_photos(
    photos: list[Path], root: Path, teacher: Teacher, find_people: FindPeople, thresholds: Thresholds
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Counter]:
    """COCO ``images`` and ``annotations`` for ``photos`` (paths under ``root``), and what was counted."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    counts: Counter = Counter()
    for path in photos:
        name = path.relative_to(root).as_posix()
        data = path.read_bytes()
        try:
            decoded = decode_rgb(open_image(data, MAX_PIXELS))
        except PoseError:
            counts["unreadable photos"] += 1
            continue
        width, height = decoded.size
        people = find_people(name, decoded)
        counts["photos"] += 1
        counts["people found"] += len(people)
        pixels = np.asarray(decoded.image)
        kept = 0
        for box, score in people:
            if max(box[2], box[3]) < thresholds.min_box_side:
                counts["people too small"] += 1
                continue
            labels = teacher.label(pixels, box)
            entry = coco_annotation(
                len(annotations) + 1, len(images) + 1, box, score, labels.keypoints, labels.scores, thresholds
            )
            if entry is None:
                counts["people with too few confident limbs"] += 1
                continue
            annotations.append(entry)
            kept += 1
        if kept:
            images.append(
                {
                    "id": len(images) + 1,
                    "file_name": name,
                    "width": width,
                    "height": height,
                    "coco_split": "pseudo",
                    "sha256": sha256_of(data),
                }
            )
    counts["people labelled"] = len(annotations)
    counts["photos with people labelled"] = len(images)
    return images, annotations, counts


def write_set(
    out: Path, root: Path, images: list[dict[str, Any]], annotations: list[dict[str, Any]], manifest: dict[str, Any]
) -> None:
    """The COCO file, the links to the photos and the manifest under ``out``."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    for image in images:
        link = out / "images" / image["file_name"]
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to((root / image["file_name"]).resolve())
    categories = [{"id": PERSON_CATEGORY, "name": "person", "keypoints": list(COCO_KEYPOINTS)}]
    coco = {
        "info": {"description": manifest["source"]["name"]},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    (out / "person_keypoints.json").write_text(json.dumps(coco) + "\n")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


# ------------------------------------------------------------------ CLI
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--photos", type=Path, required=True, help="folder of photos (searched recursively)")
    parser.add_argument("--source", type=Path, required=True, help="JSON: the photos' name, origin and licence")
    parser.add_argument("--out", type=Path, required=True, help="output folder (outside the repository)")
    parser.add_argument(
        "--teacher",
        type=Path,
        default=DEFAULT_TEACHER,
        help="the teacher's model.json (default: MoveNet Thunder where scripts/fetch_teacher.sh caches it)",
    )
    parser.add_argument("--boxes", type=Path, help="a COCO file whose person boxes to label instead of detecting")
    parser.add_argument("--check", type=Path, help="a labelled COCO file: measure the teacher on it first")
    parser.add_argument("--check-images", type=Path, help="its images (default: beside it, images/)")
    parser.add_argument("--check-split", help="only that coco_split of --check (e.g. train2017-val)")
    defaults = Thresholds()
    parser.add_argument("--min-keypoint-score", type=float, default=defaults.min_keypoint_score)
    parser.add_argument("--min-limbs", type=int, default=defaults.min_limbs)
    parser.add_argument("--min-box-side", type=float, default=defaults.min_box_side)
    parser.add_argument("--limit", type=served.positive_int, help="only the first N photos")
    served.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        source = read_source(args.source)
        root = args.photos.resolve()
        photos = find_photos(root)[: args.limit]
        try:
            teacher = Teacher(args.teacher)
        except TeacherError as exc:
            raise PseudoLabelError(f"--teacher: {exc} (scripts/fetch_teacher.sh fetches MoveNet Thunder)") from exc
        if args.boxes:
            find_people, people_from = people_in_boxes(given_boxes(args.boxes)), f"the boxes of {args.boxes}"
        elif (detector := served.person_detector(args)) is not None:
            find_people, people_from = people_detected(detector, args.max_people), detector.info.describe()
        else:
            raise PseudoLabelError("give --boxes, or keep a --detector: people are labelled one box at a time")
        check = None
        if args.check:
            images = args.check_images or args.check.parent / "images"
            check = teacher_check(teacher, args.check, images, args.check_split)
            print(
                f"teacher on {args.check} ({args.check_split or 'all'}): PCK@0.2 of the limbs "
                f"{check['pck_0.2_limbs']} over {check['people']} people"
            )
        thresholds = Thresholds(args.min_keypoint_score, args.min_limbs, args.min_box_side)
        images, annotations, counts = label_photos(photos, root, teacher, find_people, thresholds)
    except (PseudoLabelError, DataError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    manifest = {
        **stamp(),
        "source": source,
        "photos_folder": str(root),
        "teacher": {"model": str(args.teacher), **teacher.provenance},
        "people_from": people_from,
        "thresholds": vars(thresholds),
        "counts": dict(counts),
        "teacher_check": check,
    }
    write_set(args.out, root, images, annotations, manifest)
    print(", ".join(f"{key}: {value}" for key, value in counts.items()) + f" -> {args.out}")
    return 0
