"""Real-photo evaluation (LSP test and validation, COCO keypoints) through the service's own prediction pipeline.

Every photo goes through :class:`service.inference.pipeline.Pipeline` exactly as an upload to ``POST /predict``
does (the JPEG bytes decoded by the service's decoder, the letterbox or ``bbox`` crop, the model, the
decoder with the chosen refinement and flip, the exact inverse back to image pixels), so the numbers are
what a user gets, not what a training crop gets. Two modes:

- ``box``: ``bbox`` = the annotated person box (COCO's) or else the ground-truth joints' bounding box
  (LSP annotates no person boxes), which the service grows by 25% and letterboxes;
- ``whole``: no box, the whole photo letterboxed; only people alone in their photo are scored (the
  service predicts one person per crop).

Scores (Johnson & Everingham's LSP protocol): PCK@0.2, a joint is correct within 0.2 x the torso
diameter (left shoulder to right hip) of its label; per joint, the mean over the 14 LSP joints and the
mean over the 12 limb joints (the 14 without neck and head top). Beside it a PCKh-style figure, PCKh@0.5
with the head size estimated from the neck-to-head-top segment (LSP has no head boxes, so it is not
comparable to MPII's PCKh). COCO labels only the 12 limb joints, so its 14-joint mean is the limb mean and it
has no PCKh.
"""

from __future__ import annotations

import asyncio
import math
import mimetypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model_export.data.lsp import LSP_JOINTS
from model_export.data.people import DataError, PersonRecord
from model_export.metrics import PCKhResult, pckh
from pose.codec import Refine
from pose.layout import MPII, MPII_JOINTS, KeypointLayout
from service.imaging.decode import Decoder
from service.inference.detector import PersonDetector
from service.inference.engine import ModelInfo
from service.inference.pipeline import DirectInference, Pipeline, PredictOptions, Upload
from service.settings import DEFAULT_MAX_CROPS, DEFAULT_MAX_PEOPLE, DEFAULT_MAX_PIXELS

MODES: tuple[str, ...] = ("box", "whole")
PCK_THRESHOLD = 0.2
PCKH_THRESHOLD = 0.5
LSP_INDICES: tuple[int, ...] = tuple(MPII_JOINTS.index(name) for name in LSP_JOINTS)
LIMB_INDICES: tuple[int, ...] = tuple(
    MPII_JOINTS.index(name) for name in LSP_JOINTS if name not in ("upper_neck", "head_top")
)


def service_pipeline(
    info: ModelInfo, run: Callable[[np.ndarray], np.ndarray], detector: PersonDetector | None = None
) -> Pipeline:
    """The service's pipeline around a blocking model call (and ``detector`` for whole photos, if any), at the
    service's default limits."""
    decoder = Decoder(DEFAULT_MAX_PIXELS)
    people = detector.info.options.max_people if detector is not None else DEFAULT_MAX_PEOPLE
    return Pipeline(info, DirectInference(run), decoder, detector, people, DEFAULT_MAX_CROPS)


def photo_upload(path: Path) -> Upload:
    """A photo file as the upload ``POST /predict`` would get (DataError when it cannot be read)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read the photo {path}: {exc.strerror or exc}") from exc
    return Upload(data, mimetypes.guess_type(path.name)[0], path.name)


@dataclass(frozen=True)
class ModeScores:
    """One mode's PCK@0.2 (torso) and PCKh@0.5 (head-segment estimate)."""

    pck: PCKhResult
    pckh: PCKhResult

    @property
    def mean(self) -> float:
        """PCK@0.2 over the 14 LSP joints."""
        return self.pck.mean_over(LSP_INDICES)

    @property
    def limbs(self) -> float:
        """PCK@0.2 over the 12 limb joints."""
        return self.pck.mean_over(LIMB_INDICES)

    @property
    def limb_hits(self) -> tuple[int, int]:
        """``(correct, scored)`` limb joints: PCK@0.2 as a count, as for one photo's 12 joints."""
        idx = list(LIMB_INDICES)
        counts = self.pck.counts[idx]
        return int(round(float(np.nansum(self.pck.per_joint[idx] * counts)))), int(counts.sum())

    def to_json(self, layout: KeypointLayout = MPII) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if math.isnan(float(x)) else round(float(x), 6)

        def per_joint(result: PCKhResult) -> dict[str, float | None]:
            return {layout.names[k]: num(result.per_joint[k]) for k in LSP_INDICES}

        hits, scored = self.limb_hits
        return {
            "pck@0.2": {
                "mean": num(self.mean),
                "limbs": num(self.limbs),
                "limbs_correct": hits,
                "limbs_scored": scored,
                "per_joint": per_joint(self.pck),
            },
            "pckh@0.5": {"mean": num(self.pckh.mean_over(LSP_INDICES)), "per_joint": per_joint(self.pckh)},
            "counts": {layout.names[k]: int(self.pck.counts[k]) for k in LSP_INDICES},
        }

    def table(self, layout: KeypointLayout = MPII) -> str:
        """Per joint, then the 14-joint and 12-limb means; ``-`` where nothing was scored."""

        def cell(x: float, width: int) -> str:
            return f"{'-':>{width}}" if math.isnan(float(x)) else f"{x:>{width}.4f}"

        lines = [f"{'joint':<16}{'PCK@0.2':>9}{'PCKh@0.5':>10}{'count':>7}"]
        for k in LSP_INDICES:
            lines.append(
                f"{layout.names[k]:<16}{cell(self.pck.per_joint[k], 9)}{cell(self.pckh.per_joint[k], 10)}"
                f"{int(self.pck.counts[k]):>7d}"
            )
        hits, scored = self.limb_hits
        lines.append(f"{'Mean (14)':<16}{cell(self.mean, 9)}{cell(self.pckh.mean_over(LSP_INDICES), 10)}")
        lines.append(
            f"{'Limbs (12)':<16}{cell(self.limbs, 9)}{cell(self.pckh.mean_over(LIMB_INDICES), 10)}"
            f"   {hits} of {scored} limb joints within 0.2 torso"
        )
        return "\n".join(lines)


def scored_records(records: Sequence[PersonRecord], mode: str) -> list[PersonRecord]:
    """The records ``mode`` scores: all of them with the box, those alone in their photo for the whole photo."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return [r for r in records if mode == "box" or r.alone]


def score_mode(pred: np.ndarray, records: Sequence[PersonRecord], layout: KeypointLayout = MPII) -> ModeScores:
    """Scores of predictions ``(N, K, 2)`` in image pixels against ``records``' labels."""
    gt = np.stack([r.joints for r in records])
    labelled = np.stack([r.labelled for r in records])
    torso = np.array([r.torso_size() for r in records])
    head = np.array([r.head_size() for r in records])
    pck = pckh(pred, gt, labelled & (torso > 0)[:, None], torso, PCK_THRESHOLD, layout)
    head_scores = pckh(pred, gt, labelled & (head > 0)[:, None], head, PCKH_THRESHOLD, layout)
    return ModeScores(pck, head_scores)


def predict_photos(
    info: ModelInfo,
    run: Callable[[np.ndarray], np.ndarray],
    records: Sequence[PersonRecord],
    mode: str,
    refine: Refine = "quarter",
    flip: bool = False,
    detector: PersonDetector | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Keypoints ``(N, K, 2)`` in image pixels for each record's photo, as ``POST /predict`` returns them at the
    top level.

    ``run`` is the blocking model call (``(N, 3, H, W)`` -> heatmaps), ``mode`` ``box`` or ``whole`` (the whole
    photo through ``detector`` when given, as the service with its default settings).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    pipeline = service_pipeline(info, run, None if mode == "box" else detector)

    async def all_photos() -> np.ndarray:
        out = np.zeros((len(records), info.metadata.num_joints, 2))
        for i, record in enumerate(records):
            upload = photo_upload(record.image)
            options = PredictOptions(refine=refine, flip=flip, bbox=record.box() if mode == "box" else None)
            [prediction] = await pipeline.predict_uploads([upload], options)
            out[i] = prediction.points
            if progress is not None:
                progress(i + 1, len(records))
        return out

    return asyncio.run(all_photos())
