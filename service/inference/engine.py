"""The pose model, loaded: contract checks at load, ``run(batch) -> heatmaps`` on the engine of
:mod:`service.inference.runtime` (ONNX Runtime or OpenVINO).

The contract (see the README): one float32 input ``image`` ``(N, 3, H, W)`` with a dynamic batch
dimension, RGB in [0, 1]; an output ``heatmaps`` float32 ``(N, K, H/stride, W/stride)``; optional
``metadata_props`` read by :class:`pose.contract.ModelMetadata`. Anything else fails at load
with a :class:`ModelLoadError` naming the file and the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pose.contract import INPUT_NAME, OUTPUT_NAME, MetadataError, ModelMetadata
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

log = logging.getLogger("service.inference.engine")

__all__ = ["Engine", "ModelInfo", "ModelLoadError", "default_max_batch"]


@dataclass(frozen=True)
class ModelInfo:
    """What the service knows about the loaded model."""

    path: Path
    name: str
    version: str
    metadata: ModelMetadata
    runtime: Runtime

    @property
    def providers(self) -> tuple[str, ...]:
        """ONNX Runtime's active execution providers (empty when OpenVINO runs the model)."""
        return self.runtime.providers

    @property
    def heatmap_size(self) -> tuple[int, int]:
        return self.metadata.heatmap_size


class Engine:
    """A loaded, validated model; :meth:`run` is thread-safe."""

    def __init__(self, session: Session, info: ModelInfo, max_batch: int = 1) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._session = session
        self._outputs = [OUTPUT_NAME]
        self.info = info
        self.max_batch = max_batch  # most images per model call; :meth:`run` splits larger batches

    @classmethod
    def load(cls, path: Path | str, options: SessionOptions | None = None, max_batch: int | None = None) -> Engine:
        """Open, check and probe the model with one blank image; raises :class:`ModelLoadError`.

        ``max_batch`` (None: :func:`default_max_batch` of the active device) caps the images of one
        model call: each concurrent call holds working memory in proportion to its batch.
        """
        path = Path(path)
        digest = file_digest(path)
        options = options or SessionOptions()
        if max_batch in (None, 1) and options.static_batch is None:  # one image a call on CPU: a static shape
            options = replace(options, static_batch=1)
        session = open_session(path, options)
        metadata = _check_contract(path, session)
        provenance = metadata.provenance
        runtime = session.runtime
        info = ModelInfo(
            path=path,
            name=str(provenance.get("name") or path.stem),
            version=str(provenance.get("version") or digest[:12]),
            metadata=metadata,
            runtime=runtime,
        )
        if max_batch is None:
            max_batch = default_max_batch(runtime.device)
        engine = cls(session, info, max_batch)
        log.info(
            "loaded model %s (%s %s): %d joints, input %dx%d, engine %s, providers %s, I/O binding %s, batch %d",
            path,
            info.name,
            info.version,
            metadata.num_joints,
            *metadata.input_size,
            runtime.label,
            ", ".join(runtime.providers) or "-",
            engine.io_binding or "off",
            max_batch,
        )
        return engine

    @classmethod
    def from_settings(cls, settings: Settings, path: Path | str | None = None) -> Engine:
        """The model at ``path`` (default ``settings.model_path``), loaded exactly as the service loads it."""
        path = settings.model_path if path is None else path
        return cls.load(path, SessionOptions.from_settings(settings), max_batch=settings.max_model_batch)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """``(N, 3, H, W)`` float32 in [0, 1] -> heatmaps ``(N, K, h, w)`` float32, :attr:`max_batch` at a time."""
        if len(batch) <= self.max_batch:
            return self._run(batch)
        step = self.max_batch
        return np.concatenate([self._run(batch[i : i + step]) for i in range(0, len(batch), step)])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(self._outputs, {INPUT_NAME: batch})[0]

    @property
    def intra_op_threads(self) -> int:
        """The compute threads asked of the runtime (0: its own default)."""
        return self.info.runtime.threads

    @property
    def io_binding(self) -> str | None:
        """The device outputs are bound to, or None when plain ``run`` is used."""
        return getattr(self._session, "bind_device", None)

    def blank_batch(self, batch_size: int = 1) -> np.ndarray:
        return np.zeros((batch_size, 3, *self.info.metadata.input_size), np.float32)


def default_max_batch(device: str) -> int:
    """Images per model call when not configured: 32 on a GPU; 1 on CPU, where larger calls were measured no
    faster per image and each concurrent one holds about 17 MB more per image (README, "Memory")."""
    return 32 if device == "cuda" else 1


def _check_contract(path: Path, session: Session) -> ModelMetadata:
    """Validate input/output names, types and shapes, read the metadata, probe one blank image."""
    inputs = session.inputs
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        raise ModelLoadError(path, f"expected exactly one input named '{INPUT_NAME}', found {[i.name for i in inputs]}")
    image = inputs[0]
    if image.dtype != "float32" or len(image.shape) != 4:
        raise ModelLoadError(
            path, f"input '{INPUT_NAME}' must be float32 (N, 3, H, W), found {image.dtype} {_shape(image.shape)}"
        )
    if _static(image.shape[0]) is not None:
        raise ModelLoadError(path, f"input '{INPUT_NAME}' needs a dynamic batch dimension, found {_shape(image.shape)}")
    if _static(image.shape[1]) not in (None, 3):
        raise ModelLoadError(path, f"input '{INPUT_NAME}' must have 3 (RGB) channels, found {_shape(image.shape)}")
    outputs = {o.name: o for o in session.outputs}
    if OUTPUT_NAME not in outputs:
        raise ModelLoadError(path, f"no output named '{OUTPUT_NAME}' (outputs: {list(outputs)})")
    heatmaps = outputs[OUTPUT_NAME]
    if heatmaps.dtype != "float32" or len(heatmaps.shape) != 4:
        raise ModelLoadError(
            path,
            f"output '{OUTPUT_NAME}' must be float32 (N, K, h, w), found {heatmaps.dtype} {_shape(heatmaps.shape)}",
        )
    props = session.metadata
    input_hw = [_static(d) for d in image.shape[2:]]
    joints = _static(heatmaps.shape[1])
    try:
        if joints is None and not props.get("keypoint_names"):
            probe_hw = tuple(d or 256 for d in input_hw)
            joints = int(_probe(path, session, probe_hw).shape[1])
        metadata = ModelMetadata.from_props(props, num_joints=joints, input_hw=input_hw)
    except MetadataError as exc:
        raise ModelLoadError(path, f"bad metadata: {exc}") from exc
    size = metadata.input_size
    if all(input_hw) and tuple(input_hw) != size:
        raise ModelLoadError(
            path, f"metadata input_size {list(size)} contradicts the input shape {_shape(image.shape)}"
        )
    stride = metadata.heatmap_stride
    if size[0] % stride or size[1] % stride:
        raise ModelLoadError(path, f"input size {list(size)} is not a multiple of the heatmap stride {stride}")
    out = _probe(path, session, size)
    expected = (1, metadata.num_joints, size[0] // stride, size[1] // stride)
    if out.dtype != np.float32 or out.shape != expected:
        raise ModelLoadError(
            path,
            f"'{OUTPUT_NAME}' for a 1x3x{size[0]}x{size[1]} image is {out.dtype} {out.shape}, "
            f"expected float32 {expected}",
        )
    return metadata


def _probe(path: Path, session: Session, size: tuple[int, int]) -> np.ndarray:
    try:
        return session.run([OUTPUT_NAME], {INPUT_NAME: np.zeros((1, 3, *size), np.float32)})[0]
    except Exception as exc:
        raise ModelLoadError(
            path, f"inference on a blank 1x3x{size[0]}x{size[1]} image failed ({first_line(exc)})"
        ) from exc


def _static(dim: int | None) -> int | None:
    return dim if dim is not None and dim > 0 else None


def _shape(shape: tuple[int | None, ...]) -> str:
    """``(None, 3, 256, 256)`` as ``[N, 3, 256, 256]``: dynamic dimensions shown as ``N``."""
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"
