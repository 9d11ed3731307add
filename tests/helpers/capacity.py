"""The service's worst-case memory, from its settings: what the README states and the compose files and
``deploy/k8s`` must leave room for (tests/test_memory_ceiling.py checks both the sum and the limits).

Four terms, each bounded by a setting:

- **baseline**: the process with the model loaded and warm (measured: 157 MB with the default model, CPU), the
  person detector's session when one is loaded (measured: +50 MB), OpenVINO when ``POSE_ENGINE`` may pick it
  (measured: +56 MB for both models), and the idle decode worker processes
  (``POSE_DECODE_PROCESSES``, 32 MB each; their decodes count in the budget);
- **uploads**: only the ``POSE_MAX_CONCURRENCY`` requests holding a slot read their bodies, each at most
  ``POSE_MAX_FILES`` files of ``POSE_MAX_UPLOAD_BYTES``, plus one more while a part is copied out of the
  multipart parser;
- **decodes**: the decode budget, ``POSE_DECODE_MEMORY_MB``, shared by every decode in flight
  (:mod:`service.imaging.budget`);
- **inference**: per request, the model input and heatmaps of its person crops (at most ``POSE_MAX_CROPS``, twice
  that with ``flip``), per model call ONNX Runtime's working memory for ``POSE_MAX_MODEL_BATCH`` images (measured:
  15 MB per image for the default model on CPU), and the person detector's call (measured: about 15 MB; 20 counted).
"""

from __future__ import annotations

from dataclasses import dataclass

from pose.contract import DEFAULT_HEATMAP_STRIDE, DEFAULT_INPUT_SIZE
from pose.layout import MPII
from service.inference.engine import default_max_batch
from service.settings import Settings

MB = 1_000_000
BASELINE_BYTES = 160 * MB  # measured with the default model: 157 MB once ready
WORKER_BYTES = 35 * MB  # measured: an idle decode worker (service.imaging.isolation), 32 MB
MODEL_CALL_BYTES_PER_IMAGE = 15 * MB  # measured: 8 concurrent batch-1 calls of the default model, +120 MB
DETECTOR_BYTES = 50 * MB  # measured: the ready server with the shipped person detector, 228 MB against 178 MB
# measured 2026-12-05 (AMD EPYC): the ready server with both shipped models, 278 MB on OpenVINO bfloat16 against 222 MB
# on ONNX Runtime. Its model calls hold less than ONNX Runtime's (8 concurrent: +12 MB against +122 MB), so the
# per-call term below, ONNX Runtime's, bounds both engines.
OPENVINO_BYTES = 60 * MB
# measured: 8 concurrent flipped requests of a four-person photo peaked 311 MB over the ready server (39 MB a slot:
# 8 crops' inputs and heatmaps 8 MB, a pose call 15 MB, the detector's call the rest)
DETECTOR_CALL_BYTES = 20 * MB
_HEIGHT, _WIDTH = DEFAULT_INPUT_SIZE
# float32 model input and heatmaps of one image under the ONNX contract's defaults
INPUT_BYTES_PER_IMAGE = 4 * (
    3 * _HEIGHT * _WIDTH + MPII.num_joints * (_HEIGHT // DEFAULT_HEATMAP_STRIDE) * (_WIDTH // DEFAULT_HEATMAP_STRIDE)
)
CPU_MODEL_BATCH = default_max_batch("cpu")


@dataclass(frozen=True)
class MemoryCeiling:
    """Worst-case bytes of each term and their total."""

    baseline: int
    uploads: int
    decodes: int
    inference: int

    @property
    def total(self) -> int:
        return self.baseline + self.uploads + self.decodes + self.inference


def memory_ceiling(settings: Settings, baseline: int = BASELINE_BYTES) -> MemoryCeiling:
    """The most memory the service can hold under ``settings`` (CPU; ``baseline``: the ready server process)."""
    slots = settings.max_concurrency
    uploads = slots * (settings.max_files + 1) * settings.max_upload_bytes
    crops = max(settings.max_files, settings.max_crops) if settings.detector_path else settings.max_files
    per_request = 2 * crops * INPUT_BYTES_PER_IMAGE  # flip doubles the batch
    model_batch = min(settings.max_model_batch or CPU_MODEL_BATCH, 2 * crops)
    per_call = model_batch * MODEL_CALL_BYTES_PER_IMAGE + (DETECTOR_CALL_BYTES if settings.detector_path else 0)
    workers = settings.decode_processes * WORKER_BYTES
    detector = DETECTOR_BYTES if settings.detector_path else 0
    openvino = OPENVINO_BYTES if settings.engine != "onnxruntime" else 0
    decodes = settings.decode_memory_mb * MB
    return MemoryCeiling(baseline + detector + openvino + workers, uploads, decodes, slots * (per_request + per_call))
