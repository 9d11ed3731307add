"""`python -m model_export label-audit`: the people of a training source whose left and right are swapped in its
labels, found with the teacher (:mod:`model_export.teacher`).

LSPET's labels were gathered on Amazon Mechanical Turk, and some annotators marked left and right as the camera
sees them rather than as the person's own. For each upright person of the source (:data:`UPRIGHT`) the teacher
labels the person's box; when the labels mirrored (left <-> right) agree with it on at least ``--margin`` more of
the 12 limb joints than the labels as they are, and on at least ``--min-agree`` of them, the person is listed.
Agreement is PCK@0.2 of the torso. Training's ``--mirrored FILE`` reads the list and swaps those labels back.

The output is small and names only image files (no labels, no pixels), so it can be committed beside the code.
Like :mod:`evaluation.pseudo_labels` (whose :func:`~evaluation.pseudo_labels.teacher_points` it uses) it sits above
``model_export`` because it runs the service's image decoding.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from evaluation.pseudo_labels import DEFAULT_TEACHER, teacher_points
from model_export.data import mpii, sources
from model_export.data.coco import COCO_TO_MPII
from model_export.data.people import DataError, PersonRecord
from model_export.provenance import stamp
from model_export.teacher import Teacher, TeacherError
from pose.layout import MPII

THRESHOLD = 0.2  # PCK@0.2 of the torso: what "agrees" means
UPRIGHT = 0.5  # audited only when the shoulders are at least this many torsos above the hips: the teacher (trained
# on COCO's mostly upright people) is not trusted to tell left from right on people upside down or lying


def upright(record: PersonRecord) -> bool:
    """Both shoulders and both hips labelled, and the shoulders' midpoint :data:`UPRIGHT` torsos above the hips'."""
    joints = [MPII.names.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
    if not record.labelled[joints].all():
        return False
    shoulders, hips = record.joints[joints[:2]].mean(axis=0), record.joints[joints[2:]].mean(axis=0)
    return hips[1] - shoulders[1] >= UPRIGHT * record.torso_size()


def agreement(record: PersonRecord, teacher_points: np.ndarray) -> tuple[int, int]:
    """How many labelled limb joints the teacher's MPII-ordered points ``(16, 2)`` agree with: the labels as they
    are, and mirrored."""
    torso = record.torso_size()
    flip = MPII.flip_index
    limbs = [m for m in COCO_TO_MPII.values() if record.labelled[m] and record.labelled[flip[m]]]
    as_is = sum(bool(np.linalg.norm(teacher_points[m] - record.joints[m]) <= THRESHOLD * torso) for m in limbs)
    mirrored = sum(bool(np.linalg.norm(teacher_points[m] - record.joints[flip[m]]) <= THRESHOLD * torso) for m in limbs)
    return as_is, mirrored


def audit(records: list[PersonRecord], teacher: Teacher, margin: int, min_agree: int) -> tuple[list[str], dict]:
    """File names (relative to the source's images) of the people whose labels are mirrored, and counts."""
    mirrored: list[str] = []
    counts = {"people": 0, "not upright or without a torso": 0, "mirrored": 0}
    for record in records:
        counts["people"] += 1
        if record.torso_size() <= 0 or not upright(record):
            counts["not upright or without a torso"] += 1
            continue
        as_is, flipped = agreement(record, teacher_points(teacher, record))
        if flipped >= as_is + margin and flipped >= min_agree:
            mirrored.append(record.image.name)
            counts["mirrored"] += 1
    return mirrored, counts


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, choices=("lsp", "lspet", "mpii", "coco"), help="training source")
    parser.add_argument("--out", type=Path, required=True, help="the list (JSON) to write")
    parser.add_argument("--teacher", type=Path, default=DEFAULT_TEACHER, help="MoveNet Thunder's model.json")
    parser.add_argument("--margin", type=int, default=4, help="mirrored agrees on this many more limb joints")
    parser.add_argument("--min-agree", type=int, default=8, help="and on at least this many")
    parser.add_argument("--limit", type=int, help="only the first N people")
    mpii.add_arguments(parser, splits=("train",))
    sources.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        teacher = Teacher.movenet(args.teacher)
        records = sources.real_records(args, [args.source])[args.source][: args.limit]
    except (TeacherError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    mirrored, counts = audit(records, teacher, args.margin, args.min_agree)
    report = {
        **stamp(),
        "source": args.source,
        "teacher": teacher.provenance,
        "rule": {"threshold": f"PCK@{THRESHOLD} of the torso", "margin": args.margin, "min_agree": args.min_agree},
        "counts": counts,
        "mirrored": mirrored,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"{args.source}: {counts['mirrored']} of {counts['people']} people mirrored -> {args.out}")
    return 0
