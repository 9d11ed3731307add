"""Benchmark 2: service overhead. ``POST /predict`` of a 640x480 JPEG over one keep-alive HTTP
connection vs the bare ``session.run`` on a preprocessed 1x3x256x256 tensor; p50/p95 and their ratio.
The two are timed alternately, call by call, so a change in machine load affects both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import httpx
import numpy as np

from bench.common import MIN_SAMPLES, Stats, add_common_args, jpeg_bytes, print_rows, profile_of, write_result
from bench.fixture import bench_model
from bench.servers import served
from service.app import load_engine
from service.settings import Settings


def measure(
    model_path: str, base: str, image: bytes, warmup: int, repeat: int, budget_s: float = 60.0
) -> dict[str, object]:
    """Bare ``run`` and ``POST /predict``, alternating call by call so both see the same machine load.

    The bare call uses the service's own session factory and settings (``POSE_*`` and defaults).
    """
    engine = load_engine(Settings(model_path=model_path))
    x = np.random.default_rng(0).random((1, 3, *engine.info.metadata.input_size), dtype=np.float32)
    stages: dict[str, list[float]] = defaultdict(list)
    bare: list[float] = []
    http: list[float] = []
    with httpx.Client(base_url=base, timeout=60.0) as client:

        def post() -> dict[str, float]:
            response = client.post("/predict", files={"file": ("photo.jpg", image, "image/jpeg")})
            response.raise_for_status()
            return response.json().get("timings_ms", {})

        started = time.perf_counter()
        for i in range(warmup + repeat):
            if i >= warmup + MIN_SAMPLES and time.perf_counter() - started > budget_s:
                break
            t0 = time.perf_counter()
            engine.run(x)
            t1 = time.perf_counter()
            timings = post()
            t2 = time.perf_counter()
            if i >= warmup:
                bare.append(t1 - t0)
                http.append(t2 - t1)
                for stage, ms in timings.items():
                    stages[stage].append(float(ms))
    bare_stats, http_stats = Stats.of(bare), Stats.of(http)
    return {
        "bare_session_run": bare_stats.as_dict(),
        "post_predict": http_stats.as_dict(),
        "service_stages_median_ms": {k: round(statistics.median(v), 3) for k, v in stages.items()},
        "overhead_ratio_p50": round(http_stats.median_ms / bare_stats.median_ms, 3),
        "overhead_ratio_p95": round(http_stats.p95_ms / bare_stats.p95_ms, 3),
        "overhead_ms_p50": round(http_stats.median_ms - bare_stats.median_ms, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    add_common_args(parser)
    args = parser.parse_args(argv)
    profile = profile_of(args)
    model = bench_model(args.smoke, args.model)
    image = jpeg_bytes(640, 480)
    repeat = profile.repeat * 2
    with served("service", model) as base:
        result = measure(str(model.onnx_path), base, image, profile.warmup, repeat, 3 * profile.case_budget_s)
    print_rows("service overhead (640x480 JPEG)", [{"what": k, "value": v} for k, v in result.items()])
    config = {"model": model.describe(), "profile": profile.name, "image": [640, 480], "jpeg_bytes": len(image)}
    write_result(args.out, "overhead", config, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
