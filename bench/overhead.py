"""Benchmark 2: service overhead. ``POST /predict`` of the test photo (640x425) over one keep-alive HTTP
connection vs the bare ``session.run`` on a preprocessed 1x3x256x256 tensor; p50/p95 and their ratio.
The calls are timed in turn, call by call, so a change in machine load affects all alike.

Two clients send the same multipart request: a minimal HTTP/1.1 client (:mod:`bench.rawhttp`: the
request prebuilt as bytes, one ``sendall``, receives until the body is complete), whose own cost is
close to nothing, and httpx, as a Python user would. The ratio is the minimal client's.

Where the minimal client's overhead goes, per request (medians): the stages the service reports, the rest
of the app's time (``Server-Timing: app`` minus the stages: middleware, routing, upload parsing, thread
hops, JSON) and everything outside the app (latency minus ``app``: TCP, uvicorn's HTTP parsing, the client).

The overhead is then measured once more on the 8-stack 256-feature architecture (the package's default
shape and that of the published MPII model; seeded random weights, which time like trained ones) to show
it as the constant it is.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

from bench.common import (
    MIN_SAMPLES,
    Stats,
    add_common_args,
    parse_server_timing,
    photo_bytes,
    print_rows,
    profile_of,
    write_result,
)
from bench.fixture import BenchModel, bench_model, reference_model
from bench.rawhttp import RawClient, Reply, multipart_file
from bench.servers import served
from service.http.middleware import SERVER_TIMING_HEADER
from service.inference.engine import Engine
from service.settings import Settings


def reported_timings(reply: Reply) -> dict[str, float]:
    """The service's stage timings plus ``app`` from its ``Server-Timing`` header (ms)."""
    timings = dict(reply.ok("POST /predict").json().get("timings_ms", {}))
    app = parse_server_timing(reply.headers.get(SERVER_TIMING_HEADER, "")).get("app")
    return timings if app is None else {**timings, "app": app}


def measure(
    model_path: str,
    base: str,
    image: bytes,
    warmup: int,
    repeat: int,
    budget_s: float = 60.0,
    with_httpx: bool = True,
) -> dict[str, object]:
    """Bare ``run`` and ``POST /predict`` from the minimal client (and httpx), in turn call by call.

    The bare call uses the service's own session factory and settings (``POSE_*`` and defaults). Only the
    exchange itself is timed; reading the minimal client's reply (JSON, ``Server-Timing``) comes after.
    """
    engine = Engine.from_settings(Settings(model_path=model_path))
    x = np.random.default_rng(0).random((1, 3, *engine.info.metadata.input_size), dtype=np.float32)
    stages: dict[str, list[float]] = defaultdict(list)
    split: dict[str, list[float]] = defaultdict(list)  # the minimal client's overhead, request by request
    times: dict[str, list[float]] = defaultdict(list)
    body, content_type = multipart_file("file", "photo.jpg", image, "image/jpeg")
    with RawClient(base) as raw, httpx.Client(base_url=base, timeout=60.0) as client:
        request = raw.prepare("POST", "/predict", body, content_type)

        def httpx_post() -> None:
            client.post("/predict", files={"file": ("photo.jpg", image, "image/jpeg")}).raise_for_status()

        calls: dict[str, Callable[[], Any]] = {"bare": lambda: engine.run(x), "lean": lambda: raw.send(request)}
        if with_httpx:
            calls["httpx"] = httpx_post
        started = time.perf_counter()
        for i in range(warmup + repeat):
            if i >= warmup + MIN_SAMPLES and time.perf_counter() - started > budget_s:
                break
            for name, call in calls.items():
                t0 = time.perf_counter()
                outcome = call()
                elapsed = time.perf_counter() - t0
                timings = reported_timings(outcome) if name == "lean" else {}
                if i >= warmup:
                    times[name].append(elapsed)
                    if name == "lean":
                        _record(timings, elapsed * 1000.0, stages, split)
    bare, http_stats = Stats.of(times["bare"]), Stats.of(times["lean"])
    result: dict[str, object] = {
        "bare_session_run": bare.as_dict(),
        "post_predict": http_stats.as_dict(),
        "service_stages_median_ms": {k: round(statistics.median(v), 3) for k, v in stages.items()},
        "overhead_split_median_ms": {k: round(statistics.median(v), 3) for k, v in split.items()},
        "overhead_ratio_p50": round(http_stats.median_ms / bare.median_ms, 3),
        "overhead_ratio_p95": round(http_stats.p95_ms / bare.p95_ms, 3),
        "overhead_ms_p50": round(http_stats.median_ms - bare.median_ms, 3),
    }
    if with_httpx:
        httpx_stats = Stats.of(times["httpx"])
        result["post_predict_httpx"] = httpx_stats.as_dict()
        result["httpx_overhead_ratio_p50"] = round(httpx_stats.median_ms / bare.median_ms, 3)
    return result


def _record(
    timings: dict[str, float], latency_ms: float, stages: dict[str, list[float]], split: dict[str, list[float]]
) -> None:
    """File one request's stage timings, and its split into app-but-not-stage and outside-the-app time."""
    app = timings.get("app")
    stage_ms = {stage: float(ms) for stage, ms in timings.items() if stage != "app"}
    for stage, ms in stage_ms.items():
        stages[stage].append(ms)
    if app is not None:
        split["in_app_outside_stages"].append(app - sum(stage_ms.values()))
        split["outside_app"].append(latency_ms - app)


def measure_served(
    model: BenchModel, image: bytes, warmup: int, repeat: int, budget_s: float, with_httpx: bool = True
) -> dict[str, object]:
    """:func:`measure` against the service started on ``model`` for the purpose."""
    with served("service", model) as base:
        return measure(str(model.onnx_path), base, image, warmup, repeat, budget_s, with_httpx)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    add_common_args(parser)
    args = parser.parse_args(argv)
    profile = profile_of(args)
    model = bench_model(args.smoke, args.model)
    image = photo_bytes()
    result = measure_served(model, image, profile.warmup, profile.repeat * 2, 3 * profile.case_budget_s)
    reference = reference_model(args.smoke)
    # a few hundred ms a call on a CPU: fewer calls, each the same alternation, no httpx
    result["reference_architecture"] = {
        "model": reference.describe(),
        **measure_served(
            reference, image, min(profile.warmup, 2), profile.repeat, 2 * profile.case_budget_s, with_httpx=False
        ),
    }
    print_rows("service overhead (photo 640x425)", [{"what": k, "value": v} for k, v in result.items()])
    config = {
        "model": model.describe(),
        "profile": profile.name,
        "image": "tests/data/000000000785.jpg (640x425)",
        "jpeg_bytes": len(image),
    }
    write_result(args.out, "overhead", config, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
