"""Person detection in the core: the detector's ONNX contract and the decoding of its outputs into person boxes.

The detector is an anchor-free, single-stage network of the GFL family (NanoDet): for every cell of each
stride's grid it scores "a person's box is centred near here" and predicts the distances from the cell's point
(``(column, row) * stride`` in input pixels, pixel-edge coordinates) to the box's left, top, right and bottom
sides, each as a discrete distribution over ``bins`` values ``0 .. bins - 1`` (times the stride) whose
expectation is the distance (Li et al., *Generalized Focal Loss*, NeurIPS 2020). Boxes then go through greedy
non-maximum suppression and back to the image through the letterbox's exact inverse.

Contract of the ONNX file: one input ``image`` float32 ``(N, 3, H, W)`` RGB in [0, 1]; outputs ``scores``
float32 ``(N, A)`` (the person probability per point) and ``distances`` float32 ``(N, A, 4, bins)`` (logits);
the points run stride by stride, row by row. ``metadata_props`` hold :data:`DETECTOR_KEY` (input size, strides,
bins) and ``provenance``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from pose.geometry import Affine, Box

DETECTOR_INPUT = "image"
DETECTOR_SCORES = "scores"
DETECTOR_DISTANCES = "distances"
DETECTOR_KEY = "person_detector"  # JSON {"input_size": [H, W], "strides": [...], "bins": B}
PROVENANCE_KEY = "provenance"


class DetectorContractError(ValueError):
    """Detector metadata that is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class DetectorSpec:
    """The detector's input geometry and output layout, from its ONNX metadata."""

    input_size: tuple[int, int]  # (H, W)
    strides: tuple[int, ...]
    bins: int
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        h, w = self.input_size
        if not self.strides or any(s <= 0 or h % s or w % s for s in self.strides):
            raise DetectorContractError(f"strides {list(self.strides)} must be positive and divide {h}x{w}")
        if self.bins < 2:
            raise DetectorContractError(f"a distance distribution needs at least 2 bins, got {self.bins}")

    @cached_property
    def points(self) -> np.ndarray:
        """:func:`grid_points` of this spec, computed once (every detection reads it), read-only."""
        points = grid_points(self)
        points.setflags(write=False)
        return points

    @property
    def num_points(self) -> int:
        h, w = self.input_size
        return sum((h // s) * (w // s) for s in self.strides)

    def to_props(self) -> dict[str, str]:
        layout = {"input_size": list(self.input_size), "strides": list(self.strides), "bins": self.bins}
        return {DETECTOR_KEY: json.dumps(layout), PROVENANCE_KEY: json.dumps(self.provenance, sort_keys=True)}

    @classmethod
    def from_props(cls, props: Mapping[str, str]) -> DetectorSpec:
        try:
            layout = json.loads(props[DETECTOR_KEY])
            provenance = json.loads(props.get(PROVENANCE_KEY) or "{}")
            h, w = (int(v) for v in layout["input_size"])
            strides = tuple(int(s) for s in layout["strides"])
            bins = int(layout["bins"])
        except KeyError as exc:
            raise DetectorContractError(f"metadata lacks {exc.args[0]!r}: not a person detector") from exc
        except (TypeError, ValueError) as exc:
            raise DetectorContractError(f"metadata '{DETECTOR_KEY}' is malformed ({exc})") from exc
        if not isinstance(provenance, dict):
            raise DetectorContractError(f"metadata '{PROVENANCE_KEY}' must be a JSON object")
        return cls((h, w), strides, bins, provenance)


@dataclass(frozen=True)
class Detection:
    """One person: ``box`` (x, y, w, h) in the image's pixel-edge coordinates, and the detector's score."""

    box: Box
    score: float

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]


def grid_points(spec: DetectorSpec) -> np.ndarray:
    """``(A, 3)`` float64: each point's x, y (input pixels) and stride, in the outputs' order."""
    h, w = spec.input_size
    levels = []
    for stride in spec.strides:
        rows, cols = np.mgrid[0 : h // stride, 0 : w // stride]
        levels.append(np.stack([cols.ravel() * stride, rows.ravel() * stride, np.full(cols.size, stride)], 1))
    return np.concatenate(levels).astype(np.float64)


def distances_to_boxes(logits: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(A, 4, B)`` distance logits at ``(A, 3)`` points -> ``(A, 4)`` boxes x1, y1, x2, y2 (input pixel edges).

    Each side's distance is the expectation of the softmax over its bins, in units of the point's stride.
    """
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    expected = (z * np.arange(z.shape[-1])).sum(-1) / z.sum(-1) * points[:, 2:3]
    x, y = points[:, 0], points[:, 1]
    return np.stack([x - expected[:, 0], y - expected[:, 1], x + expected[:, 2], y + expected[:, 3]], 1)


def overlaps(box: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One ``(4,)`` x1, y1, x2, y2 box against each of ``(M, 4)``: intersection over union, and the share of each
    of ``boxes`` that lies inside ``box`` (0 for an empty box)."""
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = width * height
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    over_union = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    inside = np.divide(inter, areas, out=np.zeros_like(inter), where=areas > 0)
    return over_union, inside


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one ``(4,)`` x1, y1, x2, y2 box with each of ``(M, 4)``."""
    return overlaps(box, boxes)[0]


def non_maximum_suppression(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, limit: int, max_inside: float = 1.0
) -> list[int]:
    """Greedy NMS: the highest-scoring box is kept and every box overlapping it by IoU > ``threshold``, or lying
    inside it by more than ``max_inside`` of its own area, dropped, repeatedly; at most ``limit`` indices, highest
    score first (ties: the lower index first)."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    while order.size and len(kept) < limit:
        best, rest = int(order[0]), order[1:]
        kept.append(best)
        union_share, inside = overlaps(boxes[best], boxes[rest])
        order = rest[(union_share <= threshold) & (inside <= max_inside)]
    return kept


# The score floors of a person, chosen on the splits that may be tuned on (weights/README.md, "The person detector"):
# every person needs DEFAULT_MIN_SCORE, except the most prominent one, which needs DEFAULT_FIRST_MIN_SCORE (a photo
# sent for poses nearly always shows someone, and its main person is the one a doubtful score costs most)
DEFAULT_MIN_SCORE = 0.3
DEFAULT_FIRST_MIN_SCORE = 0.15


@dataclass(frozen=True)
class DetectionOptions:
    """Which points become people: a score floor, the NMS overlap, and how many to keep."""

    min_score: float = DEFAULT_MIN_SCORE
    nms_iou: float = 0.6
    max_people: int = 10
    candidates: int = 300  # best-scoring points decoded before NMS (bounds the work on any image)
    first_min_score: float = DEFAULT_FIRST_MIN_SCORE  # the floor of the most prominent person (at most min_score)

    def __post_init__(self) -> None:
        if self.first_min_score > self.min_score:
            raise ValueError(f"first_min_score {self.first_min_score} is above min_score {self.min_score}")

    # a box lying inside a better one by more than this share of its area is part of that person (a torso found
    # beside the whole body); 1.0: off
    max_inside: float = 1.0


def decode_people(
    scores: np.ndarray,
    logits: np.ndarray,
    spec: DetectorSpec,
    to_input: Affine,
    image_size: tuple[int, int],
    options: DetectionOptions,
) -> list[Detection]:
    """One image's detector outputs -> people in its pixels, most prominent first.

    ``scores`` ``(A,)``, ``logits`` ``(A, 4, B)``; ``to_input`` is the image -> detector-input map the input was
    made with. Boxes are clipped to the image; prominence is the detector's score times the box's area, so a
    large, clearly seen person comes before a small or doubtful one.
    """
    if scores.shape != (spec.num_points,) or logits.shape != (spec.num_points, 4, spec.bins):
        raise DetectorContractError(
            f"detector outputs {scores.shape} and {logits.shape} do not match {spec.num_points} points of "
            f"{spec.bins} bins"
        )
    floor = min(options.min_score, options.first_min_score)
    candidates = np.flatnonzero(scores >= floor)
    if candidates.size == 0:
        return []
    candidates = candidates[np.argsort(-scores[candidates], kind="stable")[: options.candidates]]
    boxes = distances_to_boxes(logits[candidates], spec.points[candidates])
    kept = non_maximum_suppression(boxes, scores[candidates], options.nms_iou, options.max_people, options.max_inside)
    width, height = image_size
    people = []
    for k in kept:
        # pixel edges -> pixel centres, through the exact inverse, back to edges
        corners = to_input.to_image(boxes[k].reshape(2, 2) - 0.5) + 0.5
        x1, y1 = np.clip(corners[0], 0, (width, height))
        x2, y2 = np.clip(corners[1], 0, (width, height))
        if x2 > x1 and y2 > y1:
            people.append(
                Detection((float(x1), float(y1), float(x2 - x1), float(y2 - y1)), float(scores[candidates[k]]))
            )
    people.sort(key=lambda d: -d.score * d.area)
    return people[:1] + [d for d in people[1:] if d.score >= options.min_score]
