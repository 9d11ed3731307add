"""Benchmark: every person in the photo. ``POST /predict`` of real photos with 1, 2, 4 and 8 people (the test photo
tiled: its skier once, side by side, in a 2x2 and a 4x2 grid) through the service with its person detector, beside
the single-person path (the same service with ``POSE_DETECTOR_PATH`` empty, the one-person photo letterboxed), that
path on ONNX Runtime float32 (``POSE_ENGINE=onnxruntime``: ``/predict`` as it was before the engines of
:mod:`service.inference.runtime`) and the bare model calls (one pose crop at batch 1, one detector call), all on
``POSE_ENGINE``'s choice unless named, timed in turn, call by call.

Per photo: the people the service answered, p50 and p95, the ratios to both single-person paths, the model call
the service reports (``inference``: all the photo's crops), its detector time, and what each person beyond the
first adds, against one bare pose call (on 2 CPU cores a batched call is about linear in its crops).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections import defaultdict
from collections.abc import Callable

import httpx
import numpy as np
from PIL import Image

from bench.common import (
    MIN_SAMPLES,
    REPO_ROOT,
    Stats,
    add_common_args,
    parse_server_timing,
    photo_bytes,
    print_rows,
    profile_of,
    write_result,
)
from bench.fixture import bench_model
from bench.servers import served
from pose.detection import DetectionOptions
from service.imaging.decode import decode_rgb, open_image
from service.inference.detector import PersonDetector
from service.inference.engine import Engine
from service.inference.runtime import SessionOptions
from service.settings import DEFAULT_DETECTOR_PATH, Settings

ORT_SINGLE = "single-person path, onnxruntime float32"
GRIDS: dict[int, tuple[int, int]] = {1: (1, 1), 2: (2, 1), 4: (2, 2), 8: (4, 2)}  # people -> (columns, rows)


def tiled_people(people: int) -> bytes:
    """The test photo repeated on a grid (one skier each), as a JPEG of quality 90."""
    photo = Image.open(io.BytesIO(photo_bytes())).convert("RGB")
    columns, rows = GRIDS[people]
    grid = Image.new("RGB", (columns * photo.width, rows * photo.height))
    for k in range(people):
        grid.paste(photo, ((k % columns) * photo.width, (k // columns) * photo.height))
    buffer = io.BytesIO()
    grid.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def post(client: httpx.Client, data: bytes) -> Callable[[], dict]:
    def call() -> dict:
        response = client.post("/predict", files={"file": ("photo.jpg", data, "image/jpeg")})
        response.raise_for_status()
        return {"body": response.json(), "timing": parse_server_timing(response.headers["server-timing"])}

    return call


def measure(
    model_path: str, single: str, single_ort: str, people: str, warmup: int, repeat: int, budget_s: float
) -> dict:
    """Every case in turn, call by call: bare pose and detector calls, both single-person paths, each photo."""
    settings = Settings(model_path=model_path)
    engine = Engine.from_settings(settings)
    detector = PersonDetector.load(DEFAULT_DETECTOR_PATH, DetectionOptions(), SessionOptions.from_settings(settings))
    crop = np.random.default_rng(0).random((1, 3, *engine.info.metadata.input_size), dtype=np.float32)
    detector_input, _ = detector.prepare(decode_rgb(open_image(photo_bytes(), settings.max_pixels)))
    photos = {n: tiled_people(n) for n in GRIDS}
    with (
        httpx.Client(base_url=single, timeout=120) as one,
        httpx.Client(base_url=single_ort, timeout=120) as one_ort,
        httpx.Client(base_url=people, timeout=120) as many,
    ):
        calls: dict[str, Callable[[], object]] = {
            "bare pose call": lambda: engine.run(crop),
            "bare detector call": lambda: detector.run(detector_input),
            "single-person path": post(one, photos[1]),
            ORT_SINGLE: post(one_ort, photos[1]),
            **{f"{n} people": post(many, photos[n]) for n in GRIDS},
        }
        times: dict[str, list[float]] = defaultdict(list)
        answers: dict[str, list[dict]] = defaultdict(list)
        started = time.perf_counter()
        for i in range(warmup + repeat):
            for name, call in calls.items():
                t0 = time.perf_counter()
                outcome = call()
                elapsed = time.perf_counter() - t0
                if i >= warmup:
                    times[name].append(elapsed)
                    if isinstance(outcome, dict):
                        answers[name].append({**outcome, "elapsed_ms": elapsed * 1000})
            if i >= warmup + MIN_SAMPLES and time.perf_counter() - started > budget_s:
                break
    stats = {name: Stats.of(t) for name, t in times.items()}
    rows = []
    base = stats["single-person path"].median_ms
    base_ort = stats[ORT_SINGLE].median_ms
    pose_call = stats["bare pose call"].median_ms

    def answered(name: str) -> int:
        """The people (pose crops) the service answered for the case's photo, median over its calls."""
        return int(statistics.median(len(a["body"]["people"]) for a in answers[name]))

    def undecoded(name: str) -> float:
        """Median of the case's latency less its photo's decode (the tiled photos grow with their people)."""
        return statistics.median(a["elapsed_ms"] - a["timing"].get("decode", 0.0) for a in answers[name])

    first, first_people = stats["1 people"].median_ms, answered("1 people")
    # case -> whether it prices extra people (the single-person paths have none); each extra person is a pose crop the
    # service answered beyond the one-skier photo's (the detector may answer a skier twice, e.g. a torso)
    cases: dict[str, bool] = {"single-person path": False, ORT_SINGLE: False, **{f"{n} people": True for n in GRIDS}}
    for name, priced in cases.items():
        found = {len(a["body"]["people"]) for a in answers[name]}
        inference = statistics.median(a["timing"].get("inference", 0.0) for a in answers[name])
        detect = statistics.median(a["timing"].get("detect", 0.0) for a in answers[name])
        extra = answered(name) - first_people
        per_extra = (stats[name].median_ms - first) / extra if priced and extra > 0 else None
        undecoded_extra = (undecoded(name) - undecoded("1 people")) / extra if priced and extra > 0 else None
        rows.append(
            {
                "case": name,
                "people_answered": sorted(found),
                **stats[name].as_dict(),
                "vs_single_person_path": round(stats[name].median_ms / base, 3),
                "vs_onnxruntime_single_person_path": round(stats[name].median_ms / base_ort, 3),
                "inference_ms": round(inference, 3),
                "detect_ms": round(detect, 3),
                "ms_per_extra_person": None if per_extra is None else round(per_extra, 3),
                "extra_person_vs_pose_call": None if per_extra is None else round(per_extra / pose_call, 3),
                # the same, less the larger photo's longer decode: what a person costs in a photo of the same size
                "extra_person_vs_pose_call_same_size": None
                if undecoded_extra is None
                else round(undecoded_extra / pose_call, 3),
            }
        )
    bare = {name: stats[name].as_dict() for name in ("bare pose call", "bare detector call")}
    return {"rows": rows, "bare": bare}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.people", description=__doc__)
    add_common_args(parser)
    args = parser.parse_args(argv)
    profile = profile_of(args)
    model = bench_model(args.smoke, args.model)
    detector = {"POSE_DETECTOR_PATH": str(DEFAULT_DETECTOR_PATH)}
    with (
        served("service", model) as single,
        served("service", model, env={"POSE_ENGINE": "onnxruntime"}) as single_ort,
        served("service", model, env=detector) as people,
    ):
        result = measure(
            str(model.onnx_path), single, single_ort, people, profile.warmup, profile.repeat, 4 * profile.case_budget_s
        )
    print_rows("every person in the photo", result["rows"])
    config = {
        "model": model.describe(),
        "detector": str(DEFAULT_DETECTOR_PATH.relative_to(REPO_ROOT)),
        "engine": Engine.from_settings(Settings(model_path=model.onnx_path)).info.runtime.label,
        "profile": profile.name,
        "photos": {n: f"tests/data/000000000785.jpg tiled {c}x{r}, JPEG quality 90" for n, (c, r) in GRIDS.items()},
    }
    write_result(args.out, "people", config, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
