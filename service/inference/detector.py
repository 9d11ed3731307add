"""The person detector beside the pose model: a session (:mod:`service.inference.runtime`) under the detector
contract of :mod:`pose.detection`, checked at start-up, and one call per image that answers the people in it.

Its engine is the pose model's, but for ``POSE_ENGINE=auto``, where it stays on ONNX Runtime (float32 on a CPU,
CUDA on a GPU) while the pose model may take OpenVINO bfloat16: the detector's bfloat16 scores cross its floors
differently on a few photos, and the people found then differ (11 of 158 ``coco_subset`` val2017 photos), which cost
the everyday-trained pose models 0.004-0.005 PCK@0.2 of every person (0.5229 -> 0.5193 and 0.5130 -> 0.5081; the
pose model alone in bfloat16 lost 0.000 and 0.002). On ONNX Runtime the same photo gives the same people on every
CPU, at about 6 ms more a photo (23.2 against 17.0 ms a call on 2 AMD EPYC cores).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pose.detection import (
    DETECTOR_DISTANCES,
    DETECTOR_INPUT,
    DETECTOR_SCORES,
    Detection,
    DetectionOptions,
    DetectorContractError,
    DetectorSpec,
    decode_people,
)
from pose.geometry import Affine, plan
from service.imaging.decode import DecodedImage
from service.imaging.resample import resample_into
from service.inference.runtime import (
    ModelLoadError,
    Runtime,
    Session,
    SessionOptions,
    file_digest,
    first_line,
    open_session,
)
from service.settings import Settings

log = logging.getLogger("service.inference.detector")

AUTO_ENGINE = "onnxruntime"  # the detector's engine under POSE_ENGINE=auto


@dataclass(frozen=True)
class DetectorInfo:
    """What ``/model`` says of the detector."""

    path: Path
    version: str  # the file's SHA-256, first 12 hex digits
    spec: DetectorSpec
    runtime: Runtime
    options: DetectionOptions

    def describe(self) -> dict[str, Any]:
        return {
            "file": self.path.name,
            "version": self.version,
            "input_size": list(self.spec.input_size),
            "strides": list(self.spec.strides),
            "min_score": self.options.min_score,
            "first_min_score": self.options.first_min_score,
            "nms_iou": self.options.nms_iou,
            "providers": list(self.runtime.providers),
            "engine": self.runtime.describe(),
            "provenance": self.spec.provenance,
        }


class PersonDetector:
    """A loaded, checked person detector; :meth:`detect` is thread-safe."""

    def __init__(self, session: Session, info: DetectorInfo) -> None:
        self._session = session
        self.info = info

    @classmethod
    def load(
        cls,
        path: Path | str,
        options: DetectionOptions,
        engine_options: SessionOptions | None = None,
    ) -> PersonDetector:
        """Open the file and check its contract with one blank image; :class:`ModelLoadError` naming the file."""
        path = Path(path)
        digest = file_digest(path)
        engine_options = engine_options or SessionOptions()
        if engine_options.engine == "auto":  # float32 people, whatever the CPU (module docstring)
            engine_options = replace(engine_options, engine=AUTO_ENGINE)
        # one photo a call: compiled for batch 1 where the engine can use it
        session = open_session(path, replace(engine_options, static_batch=1))
        spec = _check_contract(path, session)
        info = DetectorInfo(path, digest[:12], spec, session.runtime, options)
        log.info(
            "loaded person detector %s (%s): input %dx%d, %d points, min score %.2f (the first person %.2f), engine %s",
            path, info.version, *spec.input_size, spec.num_points, options.min_score, options.first_min_score,
            session.runtime.label,
        )  # fmt: skip
        return cls(session, info)

    @classmethod
    def from_settings(cls, settings: Settings) -> PersonDetector | None:
        """The detector ``POSE_DETECTOR_PATH`` names, loaded as the service loads it; None when it is turned off."""
        if settings.detector_path is None:
            return None
        options = DetectionOptions(
            min_score=settings.detector_min_score,
            nms_iou=settings.detector_nms_iou,
            max_people=settings.max_people,
            first_min_score=settings.detector_first_min_score,
        )
        return cls.load(settings.detector_path, options, SessionOptions.from_settings(settings))

    def prepare(self, image: DecodedImage) -> tuple[np.ndarray, Affine]:
        """The detector's input for ``image`` (letterboxed, RGB in [0, 1], black padding) and the map that made it."""
        spec = self.info.spec
        to_input = plan(image.size, spec.input_size, "letterbox")
        batch = np.zeros((1, 3, *spec.input_size), np.float32)
        resample_into(image.image, to_input, batch[0], image.reduction, image.size)
        return batch, to_input

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The raw outputs: person scores ``(N, A)`` and distance logits ``(N, A, 4, B)``."""
        scores, distances = self._session.run((DETECTOR_SCORES, DETECTOR_DISTANCES), {DETECTOR_INPUT: batch})
        return scores, distances

    def detect(self, image: DecodedImage, max_people: int) -> list[Detection]:
        """The people in ``image``, most prominent first, at most ``max_people``."""
        batch, to_input = self.prepare(image)
        scores, distances = self.run(batch)
        people = decode_people(scores[0], distances[0], self.info.spec, to_input, image.size, self.info.options)
        return people[:max_people]


def _check_contract(path: Path, session: Session) -> DetectorSpec:
    """Names, shapes and metadata of the detector contract, then one blank image through it."""
    inputs = session.inputs
    if len(inputs) != 1 or inputs[0].name != DETECTOR_INPUT or len(inputs[0].shape) != 4:
        found = [(i.name, i.shape) for i in inputs]
        raise ModelLoadError(path, f"a person detector has one input '{DETECTOR_INPUT}' (N, 3, H, W), found {found}")
    outputs = {o.name for o in session.outputs}
    if not {DETECTOR_SCORES, DETECTOR_DISTANCES} <= outputs:
        raise ModelLoadError(
            path,
            f"a person detector has outputs '{DETECTOR_SCORES}' and '{DETECTOR_DISTANCES}', found {sorted(outputs)}",
        )
    try:
        spec = DetectorSpec.from_props(session.metadata)
    except DetectorContractError as exc:
        raise ModelLoadError(path, f"bad detector metadata: {exc}") from exc
    blank = np.zeros((1, 3, *spec.input_size), np.float32)
    try:
        scores, distances = session.run((DETECTOR_SCORES, DETECTOR_DISTANCES), {DETECTOR_INPUT: blank})
    except Exception as exc:  # noqa: BLE001 - any failure of the probe means the file is unusable
        raise ModelLoadError(path, f"inference on a blank image failed ({first_line(exc)})") from exc
    expected = ((1, spec.num_points), (1, spec.num_points, 4, spec.bins))
    if (scores.shape, distances.shape) != expected:
        raise ModelLoadError(
            path, f"outputs {scores.shape} and {distances.shape} for a blank image, expected {expected[0]} and "
            f"{expected[1]} from its metadata",
        )  # fmt: skip
    return spec
