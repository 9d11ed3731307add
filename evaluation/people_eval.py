"""Every person of whole photos, as ``POST /predict`` answers them without a ``bbox``: the person detector, then
one pose per person, through the service's own pipeline.

For each photo the labelled people are compared with the answered ones three ways:

- **detection**: recall and precision of the answered boxes at IoU >= 0.5 (greedy, highest detector score first,
  each box used once), recall over the scored people (torso labelled), precision over every answered person.
  Photos whose unlabelled people the detector also finds (COCO leaves small and crowd people out, MPII many
  bystanders) are charged false positives: precision is a lower bound;
- **per-person PCK@0.2 of the torso** over the 12 limb joints, after matching each labelled person to at most one
  answered person (the assignment with the most correct joints, :func:`scipy.optimize.linear_sum_assignment`);
  a labelled person left unmatched has every joint missed. Beside it, the same people with their true box;
- **COCO keypoint AP** (pycocotools' OKS evaluation) over the 12 joints COCO and MPII share, with COCO's sigmas
  for them; each answer scored by its detector score times its mean joint score. OKS needs each person's area:
  COCO's segment area where the file has it, else the labelled box's (joints' box: LSP, MPII).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.optimize import linear_sum_assignment

from evaluation.photo_eval import LIMB_INDICES, PCK_THRESHOLD, photo_upload, predict_photos, service_pipeline
from model_export.data.coco import COCO_TO_MPII
from model_export.data.people import DataError, PersonRecord
from pose.detection import iou
from pose.layout import MPII, KeypointLayout
from service.inference.detector import PersonDetector
from service.inference.engine import ModelInfo
from service.inference.pipeline import Pipeline, Prediction, PredictOptions

DETECTION_IOU = 0.5
# COCO's per-keypoint OKS sigmas (Ronchi & Perona; pycocotools' defaults) for the 12 joints shared with MPII
COCO_SIGMAS = {
    "left_shoulder": 0.079,
    "right_shoulder": 0.079,
    "left_elbow": 0.072,
    "right_elbow": 0.072,
    "left_wrist": 0.062,
    "right_wrist": 0.062,
    "left_hip": 0.107,
    "right_hip": 0.107,
    "left_knee": 0.087,
    "right_knee": 0.087,
    "left_ankle": 0.089,
    "right_ankle": 0.089,
}
SHARED = tuple(sorted(COCO_TO_MPII.values()))  # MPII indices of the 12 shared joints


@dataclass(frozen=True)
class Photo:
    """One photo and its labelled people."""

    image: Path
    people: tuple[PersonRecord, ...]


@dataclass
class PeopleScores:
    """What :func:`score_people` measures."""

    photos: int
    scored: int  # labelled people with a torso (those recall and PCK count)
    answered: int  # people the service answered
    detected: int  # scored people whose box an answered box matches at IoU >= 0.5
    true_positives: int  # answered people matching some labelled person's box
    pck_hits: int
    pck_scored: int
    box_hits: int
    box_scored: int
    keypoint_ap: dict[str, float]

    @property
    def recall(self) -> float:
        return _share(self.detected, self.scored)

    @property
    def precision(self) -> float:
        return _share(self.true_positives, self.answered)

    @property
    def pck(self) -> float:
        return _share(self.pck_hits, self.pck_scored)

    @property
    def box_pck(self) -> float:
        return _share(self.box_hits, self.box_scored)

    def to_json(self) -> dict[str, Any]:
        return {
            "photos": self.photos,
            "scored_people": self.scored,
            "answered_people": self.answered,
            "detection": {"iou": DETECTION_IOU, "recall": _r(self.recall), "precision": _r(self.precision)},
            "pck@0.2_limbs_matched": _r(self.pck),
            "pck@0.2_limbs_true_box": _r(self.box_pck),
            "limbs_correct": self.pck_hits,
            "limbs_scored": self.pck_scored,
            "keypoint_ap": {k: _r(v) for k, v in self.keypoint_ap.items()},
        }

    def table(self) -> str:
        ap = {k: self.keypoint_ap.get(k, float("nan")) for k in ("AP", "AP50", "AP75", "AR")}
        return "\n".join(
            [
                f"photos {self.photos}, scored people {self.scored}, answered people {self.answered}",
                f"detection at IoU {DETECTION_IOU}: recall {self.recall:.3f}, precision {self.precision:.3f} "
                "(unlabelled people count against it)",
                f"PCK@0.2 limbs, matched people: {self.pck:.3f} ({self.pck_hits} of {self.pck_scored} joints); "
                f"same people with their true box: {self.box_pck:.3f}",
                f"COCO keypoint AP (12 joints): AP {ap['AP']:.3f}, AP50 {ap['AP50']:.3f}, AP75 {ap['AP75']:.3f}, "
                f"AR {ap['AR']:.3f}",
            ]
        )


def _share(part: int, whole: int) -> float:
    return part / whole if whole else float("nan")


def _r(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 6)


def photos_of(records: Sequence[PersonRecord]) -> list[Photo]:
    """The records grouped by photo, in first-seen order."""
    grouped: dict[Path, list[PersonRecord]] = {}
    for record in records:
        grouped.setdefault(record.image, []).append(record)
    return [Photo(image, tuple(people)) for image, people in grouped.items()]


def predict_people(
    pipeline: Pipeline,
    photos: Sequence[Photo],
    options: PredictOptions,
    progress: Callable[[int, int], None] | None = None,
) -> list[Prediction]:
    """Each photo through the pipeline, whole, as ``POST /predict`` without a ``bbox`` runs it."""

    async def all_photos() -> list[Prediction]:
        out = []
        for i, photo in enumerate(photos):
            [prediction] = await pipeline.predict_uploads([photo_upload(photo.image)], options)
            out.append(prediction)
            if progress is not None:
                progress(i + 1, len(photos))
        return out

    return asyncio.run(all_photos())


def _corners(box: Sequence[float]) -> np.ndarray:
    x, y, w, h = box
    return np.array([x, y, x + w, y + h], np.float64)


def limb_errors(points: np.ndarray, person: PersonRecord) -> np.ndarray:
    """Distances (pixels) of ``points`` (K, 2) from ``person``'s labelled limb joints."""
    idx = [k for k in LIMB_INDICES if person.labelled[k]]
    return np.linalg.norm(points[idx] - person.joints[idx], axis=1)


def limb_hits(points: np.ndarray, person: PersonRecord) -> int:
    """Limb joints of ``person`` that ``points`` (K, 2) place within 0.2 of the torso."""
    return _within_pck(limb_errors(points, person), person)


def _within_pck(errors: np.ndarray, person: PersonRecord) -> int:
    torso = person.torso_size()
    return int((errors <= PCK_THRESHOLD * torso).sum()) if torso > 0 else 0


def match_people(people: Sequence[PersonRecord], prediction: Prediction) -> list[int | None]:
    """For each labelled person, the answered person it is matched to (the assignment with the most correct limb
    joints, ties to the closer answer), or None."""
    answers = prediction.people
    if not people or not answers:
        return [None] * len(people)
    errors = [[limb_errors(a.points, p) for a in answers] for p in people]  # each pair's distances, once
    gain = np.array([[_within_pck(e, p) for e in row] for row, p in zip(errors, people, strict=True)], np.float64)
    spread = np.array([[e.mean() if e.size else 0.0 for e in row] for row in errors])
    rows, cols = linear_sum_assignment(-(gain - 1e-6 * spread))
    matched: list[int | None] = [None] * len(people)
    for r, c in zip(rows, cols, strict=True):
        if gain[r, c] > 0:
            matched[r] = int(c)
    return matched


def detection_matches(people: Sequence[PersonRecord], prediction: Prediction) -> tuple[int, int]:
    """``(labelled people detected, answered people that are true positives)`` at IoU >= 0.5, greedily."""
    answers = sorted(prediction.people, key=lambda a: -(a.score or 0.0))
    truth = [_corners(p.box()) for p in people]
    used: set[int] = set()
    found = [False] * len(people)
    for answer in answers:
        if not truth:
            break
        overlaps = iou(_corners(answer.box), np.array(truth))
        for j in np.argsort(-overlaps):
            if overlaps[j] < DETECTION_IOU:
                break
            if j not in used:
                used.add(int(j))
                found[j] = True
                break
    return sum(found[i] for i, p in enumerate(people) if p.torso_size() > 0), len(used)


def score_people(
    photos: Sequence[Photo],
    predictions: Sequence[Prediction],
    box_points: Sequence[np.ndarray] | None,
    layout: KeypointLayout = MPII,
) -> PeopleScores:
    """Detection, matched PCK, true-box PCK (``box_points``: one ``(K, 2)`` per labelled person in photo order)
    and keypoint AP of the answers."""
    if layout.names != MPII.names:
        raise DataError("the people evaluation scores the 16 MPII joints")
    scored = answered = detected = true_positives = hits = total = box_hits = 0
    flat = 0
    for photo, prediction in zip(photos, predictions, strict=True):
        answered += len(prediction.people)
        found, correct = detection_matches(photo.people, prediction)
        detected, true_positives = detected + found, true_positives + correct
        matched = match_people(photo.people, prediction)
        for person, m in zip(photo.people, matched, strict=True):
            if person.torso_size() > 0:
                scored += 1
                total += sum(int(person.labelled[k]) for k in LIMB_INDICES)
                hits += 0 if m is None else limb_hits(prediction.people[m].points, person)
                if box_points is not None:
                    box_hits += limb_hits(box_points[flat], person)
            flat += 1
    ap = keypoint_ap(photos, predictions)
    return PeopleScores(
        len(photos), scored, answered, detected, true_positives, hits, total, box_hits, total if box_points else 0, ap
    )


def keypoint_ap(photos: Sequence[Photo], predictions: Sequence[Prediction]) -> dict[str, float]:
    """COCO keypoint AP, AP50, AP75 and AR over the 12 shared joints (pycocotools; its printout kept quiet)."""
    names = [MPII.names[k] for k in SHARED]
    images, annotations, results = [], [], []
    for image_id, (photo, prediction) in enumerate(zip(photos, predictions, strict=True), start=1):
        images.append({"id": image_id, "file_name": photo.image.name})
        for person in photo.people:
            x, y, w, h = person.box()
            keypoints = []
            for k in SHARED:
                keypoints += [*person.joints[k].tolist(), 2 if person.labelled[k] else 0]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [x, y, w, h],
                    "area": person.area or w * h,
                    "num_keypoints": int(person.labelled[list(SHARED)].sum()),
                    "keypoints": keypoints,
                }
            )
        for answer in prediction.people:
            keypoints = []
            for k in SHARED:
                keypoints += [*answer.points[k].tolist(), 1]
            score = (answer.score or 1.0) * float(np.mean(answer.scores[list(SHARED)]))
            results.append({"image_id": image_id, "category_id": 1, "keypoints": keypoints, "score": score})
    if not results:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "AR": 0.0}
    truth = {
        "info": {"description": "labelled people of the evaluated photos"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "keypoints": names, "skeleton": []}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = truth
        gt.createIndex()
        dt = gt.loadRes(results)
        evaluation = COCOeval(gt, dt, "keypoints")
        evaluation.params.kpt_oks_sigmas = np.array([COCO_SIGMAS[n] for n in names])
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    return {"AP": float(stats[0]), "AP50": float(stats[1]), "AP75": float(stats[2]), "AR": float(stats[5])}


GROUPS: dict[str, Callable[[Photo], bool]] = {
    "all": lambda photo: True,
    "one_person": lambda photo: len(photo.people) == 1,
    "several_people": lambda photo: len(photo.people) > 1,
}


def run(
    args: argparse.Namespace,
    info: ModelInfo,
    model_call: Callable[[np.ndarray], np.ndarray],
    description: str,
    records: Sequence[PersonRecord],
    detector: PersonDetector | None,
    progress: Callable[[int, int], None] | None,
) -> int:
    """``evaluate --mode people``: every photo whole through the pipeline, scored for all photos, one-person
    photos and several-people photos; the true-box PCK of the same people beside it."""
    photos = photos_of(records)
    pipeline = service_pipeline(info, model_call, detector)
    options = PredictOptions(refine=args.refine, flip=args.flip)
    try:
        predictions = predict_people(pipeline, photos, options, progress)
        ordered = [person for photo in photos for person in photo.people]
        box_points = predict_photos(info, model_call, ordered, "box", args.refine, args.flip, progress=progress)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    offsets = np.cumsum([0] + [len(photo.people) for photo in photos])
    results = {}
    for name, keep in GROUPS.items():
        chosen = [i for i, photo in enumerate(photos) if keep(photo)]
        if not chosen:
            continue
        points = [box_points[j] for i in chosen for j in range(offsets[i], offsets[i + 1])]
        results[name] = score_people([photos[i] for i in chosen], [predictions[i] for i in chosen], points)
    found = "off" if detector is None else f"{detector.info.path.name} (min score {detector.info.options.min_score})"
    print(
        f"{description}  dataset={args.dataset}  photos={len(photos)}  detector={found}  max_people={args.max_people}"
    )
    for name, scores in results.items():
        print(f"\n[{name.replace('_', ' ')} photos]\n{scores.table()}")
    if args.json:
        report = {
            "model": description,
            "dataset": args.dataset,
            "detector": None if detector is None else detector.info.describe(),
            "max_people": args.max_people,
            "flip": bool(args.flip),
            "refine": args.refine,
            "people": {name: scores.to_json() for name, scores in results.items()},
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
