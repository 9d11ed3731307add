"""Benchmark: the service against real model-serving frameworks serving the same ONNX file.

Peers (:mod:`bench.peer_apps`, each in its own venv): LitServe (a ``LitAPI``, one worker; also with its
batching, up to 8, for the load levels) and BentoML (a ``@bentoml.service`` image API, one worker). They
decode the upload with Pillow, letterbox to 256x256, run ONNX Runtime on the CPU and return the same JSON.

1. **Same answer**: every server's keypoints for the real test photo, sent as PNG (the same pixels for all),
   agree with the service's within :data:`AGREE_PX` pixels, else the run stops (the comparison would not be
   fair). For the JPEG itself the service decodes at half scale (its reduced-scale decoding), so its answer
   may differ by a quarter-pixel shift or so: that distance is recorded too.
2. **One client**: the real photo (640x425) posted by the minimal client (:mod:`bench.rawhttp`) to every
   server in turn, call by call, with the bare ``session.run`` of the service's engine in the same rotation,
   each call started on an idle machine (:data:`SETTLE_S`); each server's overhead is its p50 over that bare
   call's. Then a 12-megapixel JPEG of real photo content
   (the photo tiled with mirror flips to 4000x3000, quality 90) the same way.
3. **Load**: requests per second and p95 at 1, 4 and 16 clients, the servers in turn at each level.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from bench.common import (
    PHOTO,
    Stats,
    add_common_args,
    photo_bytes,
    print_rows,
    profile_of,
    tiled_photo_jpeg,
    time_alternating,
    write_result,
)
from bench.fixture import bench_model
from bench.loadgen import run_load
from bench.rawhttp import RawClient, multipart_file
from bench.servers import served
from service.inference.engine import Engine
from service.settings import Settings

SINGLE = ("service", "litserve", "bentoml")  # one client: LitServe's batching only waits there
LOADED = ("service", "litserve", "litserve-batched", "bentoml")
LOAD_LEVELS = (1, 4, 16)
AGREE_PX = 1.0
# the service on OpenVINO bfloat16 (POSE_ENGINE=auto on a CPU with native bfloat16) against the peers' float32:
# a heatmap peak may move by a cell, about 7 px of the test photo's skier (tests/test_runtime.py)
BF16_AGREE_PX = 8.0
# before each timed call: ONNX Runtime's default thread pool (the frameworks') spins for a while after a call, which
# would take the cores from whichever call comes next in the rotation; 50 ms lets every pool go idle first
SETTLE_S = 0.05
BARE = "bare session.run"  # the model call alone, in the same rotation as the servers


class Disagreement(RuntimeError):
    """A peer's keypoints differ from the service's by more than :data:`AGREE_PX` for the same photo."""


def keypoint_spread(answers: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Per server, the largest distance (px) of its keypoints from the service's, joint by joint."""
    reference = answers["service"]["keypoints"]
    ref = np.array([[k["x"], k["y"]] for k in reference])
    names = [k["name"] for k in reference]
    spread = {}
    for kind, answer in answers.items():
        if [k["name"] for k in answer["keypoints"]] != names:
            raise Disagreement(f"{kind} names its joints differently from the service")
        points = np.array([[k["x"], k["y"]] for k in answer["keypoints"]])
        spread[kind] = round(float(np.linalg.norm(points - ref, axis=1).max()), 3)
    return spread


def photo_png() -> bytes:
    """The test photo's pixels as PNG: every server decodes it to the same full-size image."""
    buffer = io.BytesIO()
    with Image.open(PHOTO) as image:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def _answers(clients: dict[str, RawClient], data: bytes, filename: str, content_type: str) -> dict[str, Any]:
    request = multipart_file("file", filename, data, content_type)
    return {kind: c.send(c.prepare("POST", "/predict", *request)).ok(kind).json() for kind, c in clients.items()}


def single_client(
    clients: dict[str, RawClient], bare: Callable[[], object], image: bytes, warmup: int, repeat: int, budget_s: float
) -> dict[str, Stats]:
    """Each server's latency for ``image`` and the bare model call, all in one rotation, call by call."""
    body, content_type = multipart_file("file", "photo.jpg", image, "image/jpeg")
    requests = {kind: client.prepare("POST", "/predict", body, content_type) for kind, client in clients.items()}
    calls: dict[str, Callable[[], object]] = {BARE: bare}
    for kind, client in clients.items():
        calls[kind] = lambda client=client, request=requests[kind], kind=kind: client.send(request).ok(kind)
    return time_alternating(calls, warmup, repeat, budget_s, before=lambda: time.sleep(SETTLE_S))


def latency_rows(image_name: str, stats: dict[str, Stats]) -> list[dict[str, object]]:
    bare = stats[BARE]
    rows: list[dict[str, object]] = [{"image": image_name, "server": BARE, **bare.as_dict()}]
    for kind, s in stats.items():
        if kind == BARE:
            continue
        rows.append(
            {
                "image": image_name,
                "server": kind,
                **s.as_dict(),
                "overhead_ms_p50": round(s.median_ms - bare.median_ms, 3),
                "overhead_ratio_p50": round(s.median_ms / bare.median_ms, 3),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.frameworks", description=__doc__)
    add_common_args(parser)
    args = parser.parse_args(argv)
    profile = profile_of(args)
    model = bench_model(args.smoke, args.model)
    photo = photo_bytes()
    large = tiled_photo_jpeg(1600, 1200) if args.smoke else tiled_photo_jpeg(4000, 3000)
    large_name = "smoke 1600x1200 tiled photo" if args.smoke else "12MP 4000x3000 tiled photo"
    levels = (2,) if args.smoke else LOAD_LEVELS
    engine = Engine.from_settings(Settings(model_path=model.onnx_path))
    x = np.random.default_rng(0).random((1, 3, *engine.info.metadata.input_size), dtype=np.float32)
    with contextlib.ExitStack() as stack:
        urls = {kind: stack.enter_context(served(kind, model)) for kind in LOADED}
        clients = {kind: stack.enter_context(RawClient(urls[kind], timeout=120.0)) for kind in SINGLE}
        spread = keypoint_spread(_answers(clients, photo_png(), "photo.png", "image/png"))
        spread_jpeg = keypoint_spread(_answers(clients, photo, "photo.jpg", "image/jpeg"))
        print(f"largest keypoint distance from the service's, px: PNG {spread}, JPEG {spread_jpeg}", flush=True)
        agree_px = AGREE_PX if engine.info.runtime.precision == "float32" else BF16_AGREE_PX
        if max(spread.values()) > agree_px:
            raise Disagreement(f"the servers disagree by more than {agree_px} px: {spread}")
        budget = 3 * profile.case_budget_s
        small = single_client(clients, lambda: engine.run(x), photo, profile.warmup, 2 * profile.repeat, budget)
        big = single_client(clients, lambda: engine.run(x), large, min(profile.warmup, 2), profile.repeat, budget)
        latency = latency_rows("photo 640x425", small) + latency_rows(large_name, big)
        print_rows("one client", latency)
        load = []
        for concurrency in levels:
            for kind, url in urls.items():
                result = run_load(url + "/predict", photo, concurrency, profile.load_seconds, profile.load_max_requests)
                load.append({"server": kind, **result.as_dict()})
                print(f"  {load[-1]}", flush=True)
    print_rows("load (photo 640x425)", load)
    config = {
        "model": model.describe(),
        "engine": engine.info.runtime.label,
        "peers_engine": "onnxruntime float32 (each peer's idiomatic session)",
        "profile": profile.name,
        "photo": "tests/data/000000000785.jpg (640x425)",
        "large_jpeg_bytes": len(large),
        "seconds_per_level": profile.load_seconds,
        "max_requests_per_level": profile.load_max_requests,
        "peer_batch": "litserve-batched: max_batch_size 8, batch_timeout 5 ms",
        "note": "the load generator runs on the same machine as the servers",
    }
    agreement = {"png_max_px": spread, "jpeg_max_px": spread_jpeg}
    write_result(args.out, "frameworks", config, {"agreement": agreement, "latency": latency, "load": load})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
