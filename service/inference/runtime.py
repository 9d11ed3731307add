"""Where a model runs: ONNX Runtime (CUDA or CPU, float32) or OpenVINO on the CPU, behind one small session.

``POSE_ENGINE`` chooses. ``auto``: ONNX Runtime when its providers include a GPU; else OpenVINO in bfloat16 where
the processor computes it natively (OpenVINO's CPU plugin reports ``BF16``: Intel AMX or AVX512_BF16, AMD Zen 4)
and OpenVINO is installed; else ONNX Runtime float32 on the CPU. ``onnxruntime``, ``openvino-bf16`` and
``openvino-f32`` force one; a forced engine that cannot run here is a :class:`ModelLoadError` at start-up.

ONNX Runtime computes in float32 only on x86 CPUs; OpenVINO reads the same ONNX file and, with
``INFERENCE_PRECISION_HINT`` bf16, runs its convolutions in bfloat16 with float32 accumulation (weights/README.md:
what that costs in accuracy, measured). The engine and the detector talk only to :class:`Session`.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import queue
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import onnxruntime as ort

from service import cpus
from service.settings import ENGINE_CHOICES, PREFERRED_PROVIDERS, EngineChoice, Settings

log = logging.getLogger("service.inference.runtime")

GPU_PROVIDERS = frozenset({"CUDAExecutionProvider", "TensorrtExecutionProvider"})
_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}


class ModelLoadError(RuntimeError):
    """The model file is missing, unreadable or breaks the contract, or the engine asked for cannot run it."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"cannot load model {path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class Runtime:
    """The engine a session runs on, as ``/model``, the logs and the metrics name it."""

    engine: str  # "onnxruntime", "openvino" (or "torch" for a checkpoint evaluated offline)
    version: str
    precision: str  # "float32" or "bfloat16"
    device: str  # "cpu" or "cuda"
    processor: str  # the CPU's model name (on a GPU: still the host's CPU)
    threads: int = 0  # the compute threads asked for (0: the runtime's own default)
    providers: tuple[str, ...] = ()  # ONNX Runtime's active execution providers; empty for OpenVINO

    @property
    def label(self) -> str:
        return f"{self.engine} {self.version} {self.precision} on {self.device} ({self.processor})"

    def describe(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "version": self.version,
            "precision": self.precision,
            "device": self.device,
            "processor": self.processor,
        }


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, numpy dtype name and shape (None where dynamic)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]


class Session(Protocol):
    """What the engine and the detector need of a loaded model; :meth:`run` is thread-safe."""

    runtime: Runtime
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: Mapping[str, str]  # the ONNX file's metadata_props

    def run(self, names: Sequence[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class SessionOptions:
    """How a session is opened (the service's settings, one field each)."""

    engine: EngineChoice = "auto"
    providers: tuple[str, ...] = ()
    intra_op_threads: int = 0  # 0: sized from the CPUs this process may use (service.cpus)
    inter_op_threads: int = 0
    intra_op_spinning: bool = False
    io_binding: bool | None = None  # None: on when a GPU provider is active (ONNX Runtime only)
    # the one batch size every call has, compiled in as a static shape (OpenVINO only: measured 20 against 26 ms a
    # person-detector call on 2 EPYC cores); None: dynamic
    static_batch: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionOptions:
        """The options ``settings`` ask for (the pose model's and the detector's)."""
        return cls(
            settings.engine,
            settings.providers,
            settings.intra_op_threads,
            settings.inter_op_threads,
            settings.intra_op_spinning,
            settings.io_binding,
        )


def cpu_session(engine: EngineChoice = "auto", threads: int = 0) -> SessionOptions:
    """Options for a session on the CPU only (offline tools: evaluation, calibration, benchmarks)."""
    return SessionOptions(engine, ("CPUExecutionProvider",), threads)


def resolve_engine(
    choice: EngineChoice, providers: Sequence[str], bf16_problem: str | None
) -> tuple[Literal["onnxruntime", "openvino"], Literal["float32", "bfloat16"]]:
    """The engine and precision ``choice`` means, given ONNX Runtime's usable ``providers`` and why OpenVINO
    bfloat16 cannot run here (None: it can): ``auto`` keeps a GPU on ONNX Runtime, else takes OpenVINO bfloat16
    where it runs, else ONNX Runtime float32."""
    if choice == "openvino-bf16":
        return "openvino", "bfloat16"
    if choice == "openvino-f32":
        return "openvino", "float32"
    if choice == "auto" and not GPU_PROVIDERS & set(providers) and bf16_problem is None:
        return "openvino", "bfloat16"
    return "onnxruntime", "float32"


def cpu_choice(choice: EngineChoice = "auto") -> tuple[str, str]:
    """The engine and precision ``choice`` resolves to on this machine's CPU."""
    bf16_problem = openvino_problem("bfloat16") if choice == "auto" else None
    return resolve_engine(choice, ["CPUExecutionProvider"], bf16_problem)


def unavailable(choice: EngineChoice) -> str | None:
    """Why forcing ``choice`` cannot run on this machine, or None when it can."""
    engine, precision = resolve_engine(choice, ["CPUExecutionProvider"], None)
    return openvino_problem(precision) if engine == "openvino" else None  # type: ignore[arg-type]


def open_session(path: Path, options: SessionOptions) -> Session:
    """A session for ``path`` on the engine ``options.engine`` resolves to; :class:`ModelLoadError` when the file
    cannot be opened or a forced engine is unavailable here."""
    choice = options.engine
    if choice not in ENGINE_CHOICES:
        raise ModelLoadError(path, f"unknown engine {choice!r} (one of {', '.join(ENGINE_CHOICES)})")
    try:
        providers = select_providers(options.providers)
    except ValueError as exc:
        raise ModelLoadError(path, str(exc)) from exc
    bf16_problem = openvino_problem("bfloat16") if choice == "auto" else None
    engine, precision = resolve_engine(choice, providers, bf16_problem)
    if choice == "auto" and bf16_problem and not GPU_PROVIDERS & set(providers):
        log.info("POSE_ENGINE=auto: no OpenVINO bfloat16 here (%s), so ONNX Runtime float32", bf16_problem)
    if engine == "onnxruntime":
        return OrtSession.open(path, options)
    problem = openvino_problem(precision)
    if problem:
        raise ModelLoadError(path, f"POSE_ENGINE={choice} cannot run here: {problem}")
    return OpenVinoSession.open(path, precision, options)


def select_providers(requested: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The requested providers (default: CUDA then CPU) that this ONNX Runtime build has, in order."""
    available = ort.get_available_providers()
    wanted = list(requested) or list(PREFERRED_PROVIDERS)
    chosen = [p for p in wanted if p in available]
    if not chosen:
        raise ValueError(f"none of the execution providers {wanted} is available (this ONNX Runtime has {available})")
    return chosen


def binding_device(provider: str) -> str:
    """ONNX Runtime's device name for outputs bound under ``provider``."""
    return "cuda" if provider in GPU_PROVIDERS else "cpu"


class OrtSession:
    """An ONNX Runtime session: every graph optimisation, the thread pools asked for, quiet logs; outputs bound
    to the GPU's memory when a GPU provider is active (one copy to the host per call)."""

    def __init__(self, session: ort.InferenceSession, bind_device: str | None, threads: int = 0) -> None:
        self._session = session
        self.bind_device = bind_device
        providers = tuple(session.get_providers())
        self.runtime = Runtime(
            "onnxruntime",
            ort.__version__,
            "float32",
            "cuda" if GPU_PROVIDERS & set(providers[:1]) else "cpu",
            cpus.cpu_model(),
            threads,
            providers,
        )
        self.inputs = tuple(_ort_spec(i) for i in session.get_inputs())
        self.outputs = tuple(_ort_spec(o) for o in session.get_outputs())
        self.metadata: Mapping[str, str] = dict(session.get_modelmeta().custom_metadata_map)

    @classmethod
    def open(cls, path: Path, options: SessionOptions) -> OrtSession:
        try:
            chosen = select_providers(options.providers)
        except ValueError as exc:
            raise ModelLoadError(path, str(exc)) from exc
        ort_options = ort.SessionOptions()
        ort_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = cpus.intra_op_threads(options.intra_op_threads)
        ort_options.intra_op_num_threads = threads
        ort_options.inter_op_num_threads = options.inter_op_threads
        if not options.intra_op_spinning:  # idle workers sleep instead of busy-waiting (bench/session_options.py)
            ort_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        ort_options.log_severity_level = 3  # ONNX Runtime's own warnings go to its stderr logger otherwise
        try:
            session = ort.InferenceSession(os.fspath(path), sess_options=ort_options, providers=chosen)
        except Exception as exc:  # ORT raises InvalidProtobuf, Fail, ... all meaning "not a usable model"
            raise ModelLoadError(path, f"not a valid ONNX model ({first_line(exc)})") from exc
        active = binding_device(session.get_providers()[0])
        bind = options.io_binding if options.io_binding is not None else active == "cuda"
        return cls(session, active if bind else None, threads)

    def run(self, names: Sequence[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self.bind_device is None:
            return self._session.run(list(names), feeds)
        binding = self._session.io_binding()  # one per call: run() may be called from several threads
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in names:
            binding.bind_output(name, self.bind_device)
        self._session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()


class OpenVinoSession:
    """A model compiled by OpenVINO's CPU plugin for latency (one stream, the thread count asked for) at one
    precision; :meth:`run` takes an idle infer request from a pool (one per concurrent caller, kept for reuse)."""

    def __init__(
        self, compiled: Any, runtime: Runtime, metadata: Mapping[str, str], inputs: tuple[TensorSpec, ...]
    ) -> None:
        self._compiled = compiled
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.runtime = runtime
        self.inputs = inputs  # the file's, before any static batch: the contract is the file's
        self.outputs = tuple(_ov_spec(port) for port in compiled.outputs)
        self.metadata = metadata

    @classmethod
    def open(cls, path: Path, precision: Literal["float32", "bfloat16"], options: SessionOptions) -> OpenVinoSession:
        import openvino as ov
        from openvino.frontend import FrontEndManager

        core = _core()
        onnx = FrontEndManager().load_by_framework("onnx")  # the ONNX reader alone: no guessing of other formats
        try:
            if not onnx.supported(os.fspath(path)):
                raise ValueError("OpenVINO's ONNX reader cannot parse it")
            model = onnx.convert(onnx.load(os.fspath(path)))
        except Exception as exc:  # OpenVINO's errors end with the reader's own reason
            raise ModelLoadError(path, f"not a valid ONNX model ({last_line(exc)})") from exc
        inputs = tuple(_ov_spec(port) for port in model.inputs)
        if options.static_batch is not None:
            _fix_batch(model, options.static_batch)
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bfloat16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        threads = cpus.intra_op_threads(options.intra_op_threads) or cpus.usable_cores()
        config["INFERENCE_NUM_THREADS"] = threads
        try:
            compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:
            raise ModelLoadError(path, f"OpenVINO cannot compile it ({last_line(exc)})") from exc
        runtime = Runtime("openvino", ov.__version__.split("-")[0], precision, "cpu", cpus.cpu_model(), threads)
        return cls(compiled, runtime, _ov_metadata(model), inputs)

    def run(self, names: Sequence[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self._compiled.create_infer_request()
        try:
            # the inputs are read in place (this call holds them until it returns); the outputs come back as copies,
            # not views of the request's buffers, which the next call reuses
            feeds = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feeds.items()}
            result = request.infer(feeds, share_inputs=True)
            return [result[name] for name in names]
        finally:
            self._idle.put(request)


@functools.cache
def _core() -> Any:
    import openvino as ov

    return ov.Core()


@functools.cache
def openvino_problem(precision: Literal["float32", "bfloat16"] = "bfloat16") -> str | None:
    """Why OpenVINO cannot run at ``precision`` on this machine's CPU, or None when it can."""
    try:
        core = _core()
    except ImportError:
        return "OpenVINO is not installed (pip install openvino; the GPU image leaves it out)"
    try:
        capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception as exc:  # noqa: BLE001 - no CPU plugin, or one that cannot read this processor
        return f"OpenVINO's CPU plugin is unavailable ({first_line(exc)})"
    if precision == "bfloat16" and "BF16" not in capabilities:
        return f"this CPU ({cpus.cpu_model()}) has no native bfloat16 (neither AMX nor AVX512_BF16)"
    return None


def _ort_spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)
    return TensorSpec(arg.name, _ORT_TYPES.get(arg.type, arg.type), shape)


def _fix_batch(model: Any, batch: int) -> None:
    """Make the first dimension of every input whose other dimensions are static ``batch``: OpenVINO compiles a
    static shape to faster code. An input that does not fit stays as it is (the contract check reports it)."""
    shapes = {}
    for port in model.inputs:
        shape = port.get_partial_shape()
        if shape.rank.is_static and len(shape) > 1 and shape[0].is_dynamic and all(d.is_static for d in shape[1:]):
            shapes[port.get_any_name()] = [batch, *(d.get_length() for d in shape[1:])]
    if shapes:
        model.reshape(shapes)


def _ov_spec(port: Any) -> TensorSpec:
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    return TensorSpec(port.get_any_name(), str(port.get_element_type().to_dtype()), shape)


def _ov_metadata(model: Any) -> dict[str, str]:
    """The ONNX file's metadata_props, which OpenVINO keeps in the model's ``framework`` runtime info."""
    if not model.has_rt_info(["framework"]):
        return {}
    return {str(k): str(v.astype(str)) for k, v in model.get_rt_info()["framework"].items()}


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


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def last_line(exc: BaseException) -> str:
    """The last line of an OpenVINO error: its reason (the first lines name source files of OpenVINO's)."""
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else type(exc).__name__
