"""Benchmark 2: service overhead. ``POST /predict`` of a 640x480 JPEG over one keep-alive HTTP
connection vs the bare ``session.run`` on a preprocessed 1x3x256x256 tensor; p50/p95 and their ratio.
The three are timed in turn, call by call, so a change in machine load affects all alike.

Two clients send the same multipart request: httpx, as a Python user would, and a minimal HTTP/1.1
client (``http.client``, body built once), whose own cost is a fraction of httpx's, so its
latency is closer to what the service itself adds. The ratio is the minimal client's.

Where the minimal client's overhead goes, per request (medians): the stages the service reports, the rest
of the app's time (``Server-Timing: app`` minus the stages: middleware, routing, upload parsing, thread
hops, JSON) and everything outside the app (latency minus ``app``: TCP, uvicorn's HTTP parsing, the client).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
import uuid
from collections import defaultdict
from urllib.parse import urlsplit

import httpx
import numpy as np

from bench.common import MIN_SAMPLES, Stats, add_common_args, jpeg_bytes, print_rows, profile_of, write_result
from bench.fixture import bench_model
from bench.servers import served
from service.app import load_engine
from service.middleware import SERVER_TIMING_HEADER, parse_server_timing
from service.settings import Settings


class LeanClient:
    """``POST /predict`` with a prebuilt multipart body over one keep-alive ``http.client`` connection."""

    def __init__(self, base: str, image: bytes) -> None:
        url = urlsplit(base)
        self.conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=60.0)
        boundary = uuid.uuid4().hex
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        )
        self.body = head.encode() + image + f"\r\n--{boundary}--\r\n".encode()
        self.headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}

    def post(self) -> dict[str, float]:
        """One request; the service's stage timings plus ``app`` from its ``Server-Timing`` header (ms)."""
        self.conn.request("POST", "/predict", body=self.body, headers=self.headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST /predict answered {response.status}: {data[:200]!r}")
        timings = dict(json.loads(data).get("timings_ms", {}))
        app = parse_server_timing(response.getheader(SERVER_TIMING_HEADER) or "").get("app")
        return timings if app is None else {**timings, "app": app}

    def close(self) -> None:
        self.conn.close()


def measure(
    model_path: str, base: str, image: bytes, warmup: int, repeat: int, budget_s: float = 60.0
) -> dict[str, object]:
    """Bare ``run`` and ``POST /predict`` from both clients, in turn call by call (same machine load).

    The bare call uses the service's own session factory and settings (``POSE_*`` and defaults).
    """
    engine = load_engine(Settings(model_path=model_path))
    x = np.random.default_rng(0).random((1, 3, *engine.info.metadata.input_size), dtype=np.float32)
    stages: dict[str, list[float]] = defaultdict(list)
    split: dict[str, list[float]] = defaultdict(list)  # the minimal client's overhead, request by request
    times: dict[str, list[float]] = defaultdict(list)
    lean = LeanClient(base, image)
    with httpx.Client(base_url=base, timeout=60.0) as client:

        def httpx_post() -> dict[str, float]:
            response = client.post("/predict", files={"file": ("photo.jpg", image, "image/jpeg")})
            response.raise_for_status()
            return response.json().get("timings_ms", {})

        calls = {"bare": lambda: engine.run(x), "lean": lean.post, "httpx": httpx_post}
        started = time.perf_counter()
        try:
            for i in range(warmup + repeat):
                if i >= warmup + MIN_SAMPLES and time.perf_counter() - started > budget_s:
                    break
                for name, call in calls.items():
                    t0 = time.perf_counter()
                    timings = call()
                    elapsed = time.perf_counter() - t0
                    if i >= warmup:
                        times[name].append(elapsed)
                        if name == "lean":
                            _record(timings, elapsed * 1000.0, stages, split)
        finally:
            lean.close()
    bare, http_stats, httpx_stats = Stats.of(times["bare"]), Stats.of(times["lean"]), Stats.of(times["httpx"])
    return {
        "bare_session_run": bare.as_dict(),
        "post_predict": http_stats.as_dict(),
        "post_predict_httpx": httpx_stats.as_dict(),
        "service_stages_median_ms": {k: round(statistics.median(v), 3) for k, v in stages.items()},
        "overhead_split_median_ms": {k: round(statistics.median(v), 3) for k, v in split.items()},
        "overhead_ratio_p50": round(http_stats.median_ms / bare.median_ms, 3),
        "overhead_ratio_p95": round(http_stats.p95_ms / bare.p95_ms, 3),
        "overhead_ms_p50": round(http_stats.median_ms - bare.median_ms, 3),
        "httpx_overhead_ratio_p50": round(httpx_stats.median_ms / bare.median_ms, 3),
    }


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
