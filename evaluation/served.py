"""The service's settings that shape what an evaluation measures, as command-line options: the engine, the person
detector and its floors, the people cap; and the detector loaded from them as the service loads it (on the CPU)."""

from __future__ import annotations

import argparse

from pose.detection import DetectionOptions
from service.inference.detector import PersonDetector
from service.inference.runtime import cpu_session
from service.settings import (
    DEFAULT_DETECTOR_FIRST_MIN_SCORE,
    DEFAULT_DETECTOR_MIN_SCORE,
    DEFAULT_DETECTOR_NMS_IOU,
    DEFAULT_DETECTOR_PATH,
    DEFAULT_MAX_PEOPLE,
    ENGINE_CHOICES,
)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--engine``, ``--detector``, ``--max-people`` and the detector's floors, each as its ``POSE_`` setting."""
    parser.add_argument(
        "--detector",
        metavar="ONNX",
        default=str(DEFAULT_DETECTOR_PATH),
        help="person detector for whole photos, as POSE_DETECTOR_PATH ('' : none, the whole photo letterboxed)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINE_CHOICES,
        default="auto",
        help="what runs the ONNX models, as POSE_ENGINE (auto: the pose model in OpenVINO bfloat16 where the CPU has "
        "native bfloat16, else ONNX Runtime float32, the detector in ONNX Runtime float32; on the CPU here)",
    )
    parser.add_argument("--max-people", type=positive_int, default=DEFAULT_MAX_PEOPLE, help="as POSE_MAX_PEOPLE")
    parser.add_argument(
        "--detector-min-score", type=float, default=DEFAULT_DETECTOR_MIN_SCORE, help="as POSE_DETECTOR_MIN_SCORE"
    )
    parser.add_argument(
        "--detector-first-min-score",
        type=float,
        default=DEFAULT_DETECTOR_FIRST_MIN_SCORE,
        help="as POSE_DETECTOR_FIRST_MIN_SCORE (at most --detector-min-score: a higher value is that)",
    )
    parser.add_argument(
        "--detector-max-inside",
        type=float,
        default=DetectionOptions().max_inside,
        help="a box inside a better one by more than this share of its area is dropped (1: off, the service's)",
    )


def person_detector(args: argparse.Namespace) -> PersonDetector | None:
    """The person detector of ``--detector`` on the CPU, with the options given; None for ``''``.
    Raises :class:`service.inference.runtime.ModelLoadError` when it cannot be loaded."""
    if not args.detector:
        return None
    options = DetectionOptions(
        min_score=args.detector_min_score,
        nms_iou=DEFAULT_DETECTOR_NMS_IOU,
        max_people=args.max_people,
        first_min_score=min(args.detector_first_min_score, args.detector_min_score),
        max_inside=args.detector_max_inside,
    )
    return PersonDetector.load(args.detector, options, cpu_session(args.engine))
