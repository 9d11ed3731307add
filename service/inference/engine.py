"""ONNX Runtime session: provider choice, model-contract checks at load, ``run(batch) -> heatmaps``.

The contract (see the README): one float32 input ``image`` ``(N, 3, H, W)`` with a dynamic batch
dimension, RGB in [0, 1]; an output ``heatmaps`` float32 ``(N, K, H/stride, W/stride)``; optional
``metadata_props`` read by :class:`pose.contract.ModelMetadata`. Anything else fails at load
with a :class:`ModelLoadError` naming the file and the reason.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from pose.contract import INPUT_NAME, OUTPUT_NAME, MetadataError, ModelMetadata
from service import cpus
from service.settings import PREFERRED_PROVIDERS, Settings

log = logging.getLogger("service.inference.engine")

_FLOAT = "tensor(float)"


class ModelLoadError(RuntimeError):
    """The model file is missing, unreadable or breaks the contract."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"cannot load model {path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class ModelInfo:
    """What the service knows about the loaded model."""

    path: Path
    name: str
    version: str
    metadata: ModelMetadata
    providers: tuple[str, ...]

    @property
    def heatmap_size(self) -> tuple[int, int]:
        return self.metadata.heatmap_size


def select_providers(requested: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The requested providers (default: CUDA then CPU) that this ONNX Runtime build has, in order."""
    available = ort.get_available_providers()
    wanted = list(requested) or list(PREFERRED_PROVIDERS)
    chosen = [p for p in wanted if p in available]
    if not chosen:
        raise ValueError(f"none of the execution providers {wanted} is available (this ONNX Runtime has {available})")
    return chosen


class Engine:
    """A loaded, validated model; :meth:`run` is thread-safe (ONNX Runtime sessions are)."""

    def __init__(
        self,
        session: ort.InferenceSession,
        info: ModelInfo,
        binding_device: str | None = None,
        intra_op_threads: int = 0,
        max_batch: int = 1,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._session = session
        self._outputs = [OUTPUT_NAME]
        self._binding_device = binding_device
        self.info = info
        self.intra_op_threads = intra_op_threads  # the pool size asked of ONNX Runtime; 0: its own default
        self.max_batch = max_batch  # most images per ONNX Runtime call; :meth:`run` splits larger batches

    @classmethod
    def load(
        cls,
        path: Path | str,
        providers: tuple[str, ...] | list[str] = (),
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
        intra_op_spinning: bool = False,
        io_binding: bool | None = None,
        max_batch: int | None = None,
    ) -> Engine:
        """Open, check and probe the model with one blank image; raises :class:`ModelLoadError`.

        ``max_batch`` (None: :func:`default_max_batch` of the active provider) caps the images of one
        ONNX Runtime call: each concurrent call holds working memory in proportion to its batch.

        ``io_binding`` (None: on when a CUDA provider is active) runs the model through an ONNX Runtime
        I/O binding: the output is allocated on the provider's device and copied to the host once.
        ``intra_op_threads`` 0: sized from the CPUs this process may use
        (:func:`service.cpus.intra_op_threads`).
        """
        path = Path(path)
        digest = file_digest(path)
        threads = cpus.intra_op_threads(intra_op_threads)
        session = open_session(path, providers, threads, inter_op_threads, intra_op_spinning)
        metadata = _check_contract(path, session)
        provenance = metadata.provenance
        info = ModelInfo(
            path=path,
            name=str(provenance.get("name") or path.stem),
            version=str(provenance.get("version") or digest[:12]),
            metadata=metadata,
            providers=tuple(session.get_providers()),
        )
        active = info.providers[0] if info.providers else "CPUExecutionProvider"
        if io_binding is None:
            io_binding = binding_device(active) == "cuda"
        if max_batch is None:
            max_batch = default_max_batch(active)
        engine = cls(session, info, binding_device(active) if io_binding else None, threads, max_batch)
        log.info(
            "loaded model %s (%s %s): %d joints, input %dx%d, active providers %s, I/O binding %s, intra-op threads %s",
            path,
            info.name,
            info.version,
            metadata.num_joints,
            *metadata.input_size,
            ", ".join(info.providers),
            engine.io_binding or "off",
            threads or "ONNX Runtime's default (one per physical core)",
        )
        return engine

    @classmethod
    def from_settings(cls, settings: Settings, path: Path | str | None = None) -> Engine:
        """The model at ``path`` (default ``settings.model_path``), loaded exactly as the service loads it."""
        return cls.load(
            settings.model_path if path is None else path,
            settings.providers,
            settings.intra_op_threads,
            settings.inter_op_threads,
            intra_op_spinning=settings.intra_op_spinning,
            io_binding=settings.io_binding,
            max_batch=settings.max_model_batch,
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        """``(N, 3, H, W)`` float32 in [0, 1] -> heatmaps ``(N, K, h, w)`` float32, :attr:`max_batch` at a time."""
        if len(batch) <= self.max_batch:
            return self._run(batch)
        step = self.max_batch
        return np.concatenate([self._run(batch[i : i + step]) for i in range(0, len(batch), step)])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self._binding_device is None:
            return self._session.run(self._outputs, {INPUT_NAME: batch})[0]
        binding = self._session.io_binding()  # one per call: run() may be called from several threads
        binding.bind_cpu_input(INPUT_NAME, np.ascontiguousarray(batch, dtype=np.float32))
        binding.bind_output(OUTPUT_NAME, self._binding_device)
        self._session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    @property
    def io_binding(self) -> str | None:
        """The device outputs are bound to, or None when plain ``run`` is used."""
        return self._binding_device

    def blank_batch(self, batch_size: int = 1) -> np.ndarray:
        return np.zeros((batch_size, 3, *self.info.metadata.input_size), np.float32)


def open_session(
    path: Path,
    providers: tuple[str, ...] | list[str] = (),
    intra_op_threads: int = 0,
    inter_op_threads: int = 0,
    intra_op_spinning: bool = False,
) -> ort.InferenceSession:
    """An ONNX Runtime session for ``path`` with the service's options (every graph optimisation, the thread
    pools asked for, no spinning unless asked, quiet logs); :class:`ModelLoadError` when it cannot be opened."""
    try:
        chosen = select_providers(providers)
    except ValueError as exc:
        raise ModelLoadError(path, str(exc)) from exc
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    if not intra_op_spinning:  # idle workers sleep instead of busy-waiting (bench/session_options.py)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # ONNX Runtime's own warnings go to its stderr logger otherwise
    try:
        return ort.InferenceSession(os.fspath(path), sess_options=options, providers=chosen)
    except Exception as exc:  # ORT raises InvalidProtobuf, Fail, ... all meaning "not a usable model"
        raise ModelLoadError(path, f"not a valid ONNX model ({first_line(exc)})") from exc


def default_max_batch(provider: str) -> int:
    """Images per model call when not configured: 32 on a GPU; 1 on CPU, where larger calls were measured no
    faster per image and each concurrent one holds about 17 MB more per image (README, "Memory")."""
    return 32 if binding_device(provider) == "cuda" else 1


def binding_device(provider: str) -> str:
    """ONNX Runtime's device name for outputs bound under ``provider``."""
    return "cuda" if provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else "cpu"


def file_digest(path: Path) -> str:
    """SHA-256 of the model file; any OS error (missing, a directory, name too long, no permission, I/O)
    is a :class:`ModelLoadError` naming the path and the reason."""
    try:
        if not path.exists():
            raise ModelLoadError(path, "file not found")
        if not path.is_file():
            raise ModelLoadError(path, "not a regular file")
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise ModelLoadError(path, f"unreadable ({exc.strerror or exc})") from exc


def _check_contract(path: Path, session: ort.InferenceSession) -> ModelMetadata:
    """Validate input/output names, types and shapes, read the metadata, probe one blank image."""
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        raise ModelLoadError(path, f"expected exactly one input named '{INPUT_NAME}', found {[i.name for i in inputs]}")
    image = inputs[0]
    if image.type != _FLOAT or len(image.shape) != 4:
        raise ModelLoadError(
            path, f"input '{INPUT_NAME}' must be float32 (N, 3, H, W), found {image.type} {image.shape}"
        )
    if _static(image.shape[0]) is not None:
        raise ModelLoadError(path, f"input '{INPUT_NAME}' needs a dynamic batch dimension, found {image.shape}")
    if _static(image.shape[1]) not in (None, 3):
        raise ModelLoadError(path, f"input '{INPUT_NAME}' must have 3 (RGB) channels, found {image.shape}")
    outputs = {o.name: o for o in session.get_outputs()}
    if OUTPUT_NAME not in outputs:
        raise ModelLoadError(path, f"no output named '{OUTPUT_NAME}' (outputs: {list(outputs)})")
    heatmaps = outputs[OUTPUT_NAME]
    if heatmaps.type != _FLOAT or len(heatmaps.shape) != 4:
        raise ModelLoadError(
            path, f"output '{OUTPUT_NAME}' must be float32 (N, K, h, w), found {heatmaps.type} {heatmaps.shape}"
        )
    props = session.get_modelmeta().custom_metadata_map
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
        raise ModelLoadError(path, f"metadata input_size {list(size)} contradicts the input shape {image.shape}")
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


def _probe(path: Path, session: ort.InferenceSession, size: tuple[int, int]) -> np.ndarray:
    try:
        return session.run([OUTPUT_NAME], {INPUT_NAME: np.zeros((1, 3, *size), np.float32)})[0]
    except Exception as exc:
        raise ModelLoadError(
            path, f"inference on a blank 1x3x{size[0]}x{size[1]} image failed ({first_line(exc)})"
        ) from exc


def _static(dim: Any) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
