"""Service settings, read from ``POSE_*`` environment variables (pydantic-settings).

Every field carries a description: ``/docs`` and the README list them from here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pose.detection import DEFAULT_FIRST_MIN_SCORE, DEFAULT_MIN_SCORE

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_PATH = REPO_ROOT / "weights" / "default.onnx"
DEFAULT_DETECTOR_PATH = REPO_ROOT / "weights" / "person_detector.onnx"
# defaults offline callers of the pipeline (evaluation) use too
DEFAULT_MAX_PIXELS = 50_000_000  # POSE_MAX_PIXELS
DEFAULT_MAX_PEOPLE = 20  # POSE_MAX_PEOPLE
DEFAULT_MAX_CROPS = 24  # POSE_MAX_CROPS
DEFAULT_DETECTOR_MIN_SCORE = DEFAULT_MIN_SCORE  # POSE_DETECTOR_MIN_SCORE (pose.detection)
DEFAULT_DETECTOR_FIRST_MIN_SCORE = DEFAULT_FIRST_MIN_SCORE  # POSE_DETECTOR_FIRST_MIN_SCORE
DEFAULT_DETECTOR_NMS_IOU = 0.6  # POSE_DETECTOR_NMS_IOU
EngineChoice = Literal["auto", "onnxruntime", "openvino-bf16", "openvino-f32"]  # POSE_ENGINE
ENGINE_CHOICES: tuple[str, ...] = get_args(EngineChoice)
PREFERRED_PROVIDERS: tuple[str, ...] = ("CUDAExecutionProvider", "CPUExecutionProvider")
PROVIDER_ALIASES = {
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


class Settings(BaseSettings):
    """Runtime configuration of the pose service."""

    model_config = SettingsConfigDict(env_prefix="POSE_", protected_namespaces=(), extra="ignore")

    model_path: Path = Field(
        DEFAULT_MODEL_PATH, description="ONNX model file to serve (relative paths: from the working directory)."
    )
    detector_path: Path | None = Field(
        DEFAULT_DETECTOR_PATH,
        description="ONNX person detector that finds the people of a photo sent without `bbox` (an explicit empty "
        "value turns it off: one pose of the whole photo, letterboxed).",
    )
    detector_min_score: float = Field(
        DEFAULT_DETECTOR_MIN_SCORE,
        gt=0,
        lt=1,
        description="Lowest detector score that makes a person (weights/README.md: recall and precision).",
    )
    detector_first_min_score: float = Field(
        DEFAULT_DETECTOR_FIRST_MIN_SCORE,
        gt=0,
        lt=1,
        description="Lowest detector score of the most prominent person (score x box area) of a photo: at most "
        "`POSE_DETECTOR_MIN_SCORE` (a photo's main person is often seen less surely than a bystander).",
    )
    detector_nms_iou: float = Field(
        DEFAULT_DETECTOR_NMS_IOU,
        gt=0,
        le=1,
        description="Detections overlapping a better one by more than this IoU are the same person.",
    )
    max_people: int = Field(
        DEFAULT_MAX_PEOPLE,
        ge=1,
        le=100,
        description="Most people answered per image, and the default and largest `max_people` a request may ask for.",
    )
    max_crops: int = Field(
        DEFAULT_MAX_CROPS,
        ge=1,
        description="Most person crops one request sends to the pose model (a `/predict/batch` of crowded photos; at "
        "least one per image): each image keeps its most prominent person, the rest are taken in order until the cap.",
    )
    host: str = Field("0.0.0.0", description="Interface the HTTP server binds to.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port of the HTTP server.")
    engine: EngineChoice = Field(
        "auto",
        description="What runs the models: `auto` (ONNX Runtime on a GPU; else the pose model in OpenVINO bfloat16 "
        "where the CPU has native bfloat16, AMX or AVX512_BF16, and the person detector in ONNX Runtime float32; else "
        "ONNX Runtime float32), or forced for both: `onnxruntime`, `openvino-bf16`, `openvino-f32` (start-up fails if "
        "it cannot run here). `/model` says which runs.",
    )
    providers: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description=(
            "ONNX Runtime execution providers in order of preference, comma separated (e.g. `cuda,cpu` or "
            "`CUDAExecutionProvider,CPUExecutionProvider`). Empty: CUDA then CPU, whichever the installed "
            "ONNX Runtime has."
        ),
    )
    max_upload_bytes: int = Field(
        20_000_000, gt=0, description="Largest accepted image upload in bytes (per file); larger: 413."
    )
    max_pixels: int = Field(
        DEFAULT_MAX_PIXELS,
        gt=0,
        description="Largest accepted image in pixels (width x height), checked before decoding; larger: 413.",
    )
    decode_memory_mb: int = Field(
        512,
        gt=0,
        description="Memory all decodes in flight may use together, in MB, estimated from each image's header "
        "(an image needing more alone: 413; decodes wait for their share, then 503 with `Retry-After`).",
    )
    decode_processes: int = Field(
        2,
        ge=0,
        description="Worker processes for costly decodes (over 400 million pixel passes, about half a second: "
        "progressive JPEGs with many scans over many pixels), killed and replaced when one overruns "
        "`POSE_DECODE_TIMEOUT_S` (0: decode everything in the request's thread, where an overrun cannot be stopped).",
    )
    decode_timeout_s: float = Field(
        10.0, gt=0, description="Longest decode of one image in a worker process; past it: stopped, and 422."
    )
    max_files: int = Field(16, gt=0, description="Most images in one `/predict/batch` request; more: 413.")
    decode_threads: int = Field(
        0,
        ge=0,
        description="Threads that decode one large JPEG written with restart markers, in horizontal strips "
        "(0: one per usable core, at most 8; 1: always one thread).",
    )
    intra_op_threads: int = Field(
        0,
        ge=0,
        description="Compute threads of one model call: ONNX Runtime's intra-op pool, OpenVINO's "
        "`INFERENCE_NUM_THREADS` (0: ONNX Runtime's default, one per physical core, unless a CPU set or a cgroup CPU "
        "quota limits the process: then one per physical core it may use, at most the quota; OpenVINO: one per usable "
        "CPU).",
    )
    inter_op_threads: int = Field(
        0, ge=0, description="ONNX Runtime inter-op threads (0: ONNX Runtime's default; OpenVINO: not used)."
    )
    intra_op_spinning: bool = Field(
        False,
        description="Let ONNX Runtime's intra-op threads busy-wait for work: can shave latency on dedicated, idle "
        "cores; off by default because spinning threads starve the request threads and neighbours on a shared CPU.",
    )
    io_binding: bool | None = Field(
        None,
        description="Run the model through an ONNX Runtime I/O binding (output allocated on the provider's device, "
        "copied to the host once). Unset: on when the CUDA provider is active, off on CPU.",
    )
    max_model_batch: int | None = Field(
        None,
        ge=1,
        description="Most images in one ONNX Runtime call; larger batches (a `/predict/batch` request, doubled by "
        "`flip`) run in pieces. Unset: 1 on CPU (no slower, and each concurrent call's working memory grows with its "
        "batch), 32 when the CUDA provider is active.",
    )
    warmup_runs: int = Field(
        1, ge=1, description="Inference runs on a blank image after loading, before `/readyz` turns 200."
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field("info", description="Log level.")
    # reliability (service/http/middleware/)
    api_key: SecretStr | None = Field(
        None,
        description="If set, every endpoint but the demo page `/`, `/healthz`, `/readyz`, `/docs` and "
        "`/openapi.json` needs `Authorization: Bearer <key>` or `X-API-Key: <key>`; otherwise 401. Never logged.",
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Web origins whose pages may call the API from a browser, comma separated (e.g. "
        "`https://app.example.com,http://localhost:3000`; `*` for any). Empty: none. A preflight is answered without "
        "the API key; every real request still needs it.",
    )
    max_concurrency: int = Field(
        8, gt=0, description="Prediction requests processed at once; further ones wait in the queue."
    )
    max_queue: int = Field(
        32, ge=0, description="Prediction requests waiting for a slot; beyond that an immediate 503 with `Retry-After`."
    )
    request_timeout_s: float = Field(
        30.0, gt=0, description="Deadline of a prediction request from arrival (queueing included); past it: 504."
    )
    shutdown_timeout_s: float = Field(
        20.0, gt=0, description="On SIGTERM, how long in-flight requests may take to finish before they are cancelled."
    )
    min_upload_rate: float = Field(
        4096.0,
        ge=0,
        description="Slowest accepted upload, bytes/s on average after the first `POSE_UPLOAD_GRACE_S` (0: no "
        "minimum); slower: 408, and the request's slot is free again.",
    )
    upload_grace_s: float = Field(5.0, ge=0, description="Time an upload may take before its pace is checked.")
    # connections (service/server/connections.py)
    max_header_bytes: int = Field(
        32 * 1024,
        ge=1024,
        description="Largest request head (request line and headers) in bytes; larger: 431 and the connection "
        "closes before the rest is read. At most 100 header fields.",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Time a client has to send a request head (on a new connection, or on a kept-alive one once "
        "its previous answer is sent); past it: 408 and the connection closes.",
    )
    max_connections: int = Field(
        0,
        ge=0,
        description="Most open connections (0: the process's file-descriptor limit minus 64, at most 4096). Past "
        "it the oldest connection that has not sent a byte is closed, else the new one gets 503.",
    )
    # dynamic batching (service/inference/batching.py)
    batch_max_size: int | None = Field(
        None,
        ge=1,
        description="Dynamic batching: most images per model call (1: off). Unset: 8 when the CUDA provider is "
        "active, else 1 (measured on CPU: see the README's benchmarks).",
    )
    batch_timeout_ms: float = Field(
        2.0, ge=0, description="Dynamic batching: longest wait for more requests after a batch's first one arrives."
    )
    batch_max_queue: int = Field(
        64, ge=1, description="Dynamic batching: most images waiting for the model; beyond that an immediate 503."
    )

    @field_validator("providers", mode="before")
    @classmethod
    def _split_providers(cls, value: object) -> object:
        if isinstance(value, str):
            value = _comma_list(value)
        if isinstance(value, list | tuple):
            return tuple(PROVIDER_ALIASES.get(str(p).lower(), str(p)) for p in value)
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(origin.rstrip("/") for origin in _comma_list(value))
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin != "*" and not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", origin):
                raise ValueError(f"{origin!r} is not a web origin (scheme://host[:port], no path) or '*'")
        return value

    @field_validator("detector_path", mode="before")
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _first_floor_at_most_the_floor(self) -> Settings:
        if self.detector_first_min_score > self.detector_min_score:
            raise ValueError(
                f"POSE_DETECTOR_FIRST_MIN_SCORE ({self.detector_first_min_score}) must be at most "
                f"POSE_DETECTOR_MIN_SCORE ({self.detector_min_score})"
            )
        return self


def _comma_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``: an environment variable's comma-separated items."""
    return [item for item in (part.strip() for part in text.split(",")) if item]


def settings_table() -> str:
    """Markdown table of every setting: variable, default, description (for the README)."""
    rows = ["| Variable | Default | Description |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        default = info.default
        if name in ("model_path", "detector_path"):
            default = f"weights/{default.name}"
        if default is None or default == ():
            shown = "(unset)"
        else:
            shown = f"`{','.join(default) if isinstance(default, tuple) else default}`"
        rows.append(f"| `POSE_{name.upper()}` | {shown} | {info.description} |")
    return "\n".join(rows)
