"""Shared benchmark plumbing: timing statistics, machine description, test images, result files."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from service.cpus import cpu_limit, cpu_model, usable_cores

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
# a real photo (COCO val2017 000000000785, CC BY 2.0: tests/data/README.md), 640x425, one person skiing
PHOTO = REPO_ROOT / "tests" / "data" / "000000000785.jpg"


@dataclass(frozen=True)
class Profile:
    """How hard to push: repetitions, durations and sizes for one run of the suite."""

    name: str
    warmup: int
    repeat: int
    load_seconds: float
    load_max_requests: int
    concurrency: tuple[int, ...]
    case_budget_s: float  # most seconds of timed calls for one measured case


ALL_LEVELS = (1, 4, 16, 64)
PROFILES: dict[str, Profile] = {
    "full": Profile("full", 5, 60, load_seconds=6.0, load_max_requests=2000, concurrency=ALL_LEVELS, case_budget_s=15),
    "quick": Profile("quick", 2, 15, load_seconds=2.0, load_max_requests=200, concurrency=ALL_LEVELS, case_budget_s=5),
    "smoke": Profile("smoke", 1, 2, load_seconds=0.5, load_max_requests=6, concurrency=(2,), case_budget_s=1),
}


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """--smoke / --quick, --out and --model for every benchmark script."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="tiny model, a couple of iterations: checks the script runs")
    mode.add_argument("--quick", action="store_true", help="fewer repetitions, for iterating")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the JSON results")
    parser.add_argument(
        "--model", type=Path, default=None, help="ONNX model (default: weights/default.onnx or a bench model)"
    )


def profile_of(args: argparse.Namespace) -> Profile:
    return PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"]


# ---------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class Stats:
    """Latency summary in milliseconds."""

    n: int
    median_ms: float
    p95_ms: float
    mean_ms: float
    min_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Stats:
        if not seconds:
            raise ValueError("no samples")
        ms = np.asarray(seconds, dtype=np.float64) * 1000.0
        return cls(
            n=len(ms),
            median_ms=round(float(np.median(ms)), 4),
            p95_ms=round(float(np.percentile(ms, 95)), 4),
            mean_ms=round(float(ms.mean()), 4),
            min_ms=round(float(ms.min()), 4),
        )

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


MIN_SAMPLES = 5


def time_alternating(
    fns: dict[str, Callable[[], object]],
    warmup: int,
    repeat: int,
    budget_s: float | None = None,
    before: Callable[[], object] | None = None,
) -> dict[str, Stats]:
    """Call each of ``fns`` in turn ``warmup`` times untimed, then ``repeat`` times timed, call by call, so a
    change in machine load hits all alike.

    With ``budget_s`` the warm-up stops after a third of it (one round at least) and the timed rounds
    once it is spent (keeping at least ``MIN_SAMPLES``), so a slow machine cannot stretch the suite
    without bound. ``before``, when given, runs untimed ahead of every timed call: the state each
    call starts from (such as caches just emptied by a model call).
    """
    started = time.perf_counter()
    for i in range(warmup):
        if i and budget_s is not None and time.perf_counter() - started > budget_s / 3:
            break
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    started = time.perf_counter()
    for i in range(repeat):
        for name, fn in fns.items():
            if before is not None:
                before()
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
        if budget_s is not None and i + 1 >= MIN_SAMPLES and time.perf_counter() - started > budget_s:
            break
    return {name: Stats.of(s) for name, s in samples.items()}


# ---------------------------------------------------------------------- machine
def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, load, library versions."""
    cpu = _cpuinfo()
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        # a hypervisor may name two CPU generations alike ("AMD EPYC"); the family and model numbers tell them apart
        "cpu_signature": _cpu_signature(cpu),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),  # the CPU set, capped by a cgroup CPU quota
        "cpu_quota": cpu_limit(),  # None: no quota
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "timestamp_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    versions = {}
    for package in (
        "onnxruntime",
        "onnxruntime-gpu",
        "openvino",
        "torch",
        "numpy",
        "pillow",
        "fastapi",
        "uvicorn",
        "httpx",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    info["versions"] = versions
    return info


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in ``/proc/cpuinfo`` (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _cpu_signature(fields: dict[str, str]) -> str | None:
    """``"family 26, model 2, stepping 1"`` from x86 :func:`_cpuinfo` fields, else None."""
    parts = [
        f"{name} {fields[key]}"
        for key, name in (("cpu family", "family"), ("model", "model"), ("stepping", "stepping"))
        if key in fields
    ]
    return ", ".join(parts) or None


# ---------------------------------------------------------------------- images
def synthetic_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A photo-like RGB image: smooth colour fields plus fine noise (compresses like a real JPEG)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((max(2, height // 64), max(2, width // 64), 3)).astype(np.float32)
    base = Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
    pixels = np.asarray(base, dtype=np.int16) + rng.integers(-12, 13, (height, width, 3), dtype=np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


# benchmark images: name -> (width, height, how the JPEG is written: :func:`jpeg_bytes`'s keywords)
JpegSpecs = dict[str, tuple[int, int, dict[str, Any]]]


def jpeg_bytes(
    width: int, height: int, quality: int = 90, seed: int = 0, restart_rows: int = 0, progressive: bool = False
) -> bytes:
    """A :func:`synthetic_photo` as JPEG; ``restart_rows`` > 0 writes a restart marker every that many MCU rows,
    ``progressive`` libjpeg's default progressive scan script."""
    return _jpeg(synthetic_photo(width, height, seed), quality, restart_rows, progressive)


def photo_bytes() -> bytes:
    """The real test photo's JPEG file, as a user would upload it."""
    return PHOTO.read_bytes()


def tiled_photo(width: int, height: int) -> Image.Image:
    """A ``width x height`` image of real photo content: :data:`PHOTO` tiled with mirror flips, so that the
    tiles meet without seams and the JPEG entropy-codes like a photo (never noise, which decodes far slower)."""
    with Image.open(PHOTO) as opened:
        tile = np.asarray(opened.convert("RGB"))
    row = np.concatenate([tile, tile[:, ::-1]], axis=1)
    block = np.concatenate([row, row[::-1]], axis=0)
    reps = (-(-height // block.shape[0]), -(-width // block.shape[1]), 1)
    return Image.fromarray(np.ascontiguousarray(np.tile(block, reps)[:height, :width]))


def tiled_photo_jpeg(
    width: int, height: int, quality: int = 90, restart_rows: int = 0, progressive: bool = False
) -> bytes:
    """:func:`tiled_photo` as JPEG (``restart_rows`` and ``progressive`` as in :func:`jpeg_bytes`)."""
    return _jpeg(tiled_photo(width, height), quality, restart_rows, progressive)


def _jpeg(image: Image.Image, quality: int, restart_rows: int, progressive: bool) -> bytes:
    buffer = io.BytesIO()
    extra: dict[str, object] = {"restart_marker_rows": restart_rows} if restart_rows else {}
    if progressive:
        extra["progressive"] = True
    image.save(buffer, format="JPEG", quality=quality, **extra)
    return buffer.getvalue()


# ---------------------------------------------------------------------- results
def write_result(out_dir: Path, name: str, config: dict[str, Any], results: Any) -> Path:
    """Write ``{out_dir}/{name}.json`` with the machine description and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    payload = {"benchmark": name, "machine": machine_info(), "config": config, "results": results}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def print_rows(title: str, rows: Sequence[dict[str, Any]]) -> None:
    """Echo a result table to stdout while the suite runs."""
    print(f"\n== {title}")
    for row in rows:
        print("  " + ", ".join(f"{k}={v}" for k, v in row.items()))


def parse_server_timing(value: str) -> dict[str, float]:
    """``"a;dur=1.5, b;dur=2"`` -> ``{"a": 1.5, "b": 2.0}`` (metrics without a duration are skipped)."""
    durations = {}
    for metric in value.split(","):
        name, *params = (part.strip() for part in metric.split(";"))
        for param in params:
            key, _, number = param.partition("=")
            if key.strip().lower() == "dur" and name:
                with contextlib.suppress(ValueError):
                    durations[name] = float(number)
    return durations
