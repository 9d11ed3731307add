"""Benchmark 4: a 12-megapixel JPEG end to end vs the 640x425 test photo, for the service and the baseline.

All images are real photo content: the test photo itself, and the photo tiled with mirror flips to
4000x3000 (:func:`bench.common.tiled_photo`; never noise, whose entropy decode is far slower than any
photo's). The 12-megapixel image is sent three times: as libjpeg and Pillow write it by default (baseline, one
serial entropy-coded stream); with a restart marker after every MCU row (as ``cjpeg -restart 1`` writes
it), which the service decodes in strips on several cores (``service/imaging/jpeg/strips.py``); and progressive
(``cjpeg -progressive``, common on the web), which the service decodes without the scans 1/8 scale
never reads (``service/imaging/jpeg/progressive.py``). For each
server the uploads alternate call by call, so all see the same machine load. For the service, the
decode stage it reports (``timings_ms.decode``: header parse, reduced-scale decode, EXIF
orientation) is kept too: it is what grows with the file.

**The physical floor.** What a large JPEG adds is bounded below by the entropy decoding of its bytes,
which libjpeg does serially even at 1/8 scale. So the same rotation also times the bare reduced-scale
decode of each file in this process (Pillow ``draft`` to the size the service asks for, then ``load``),
and each row reports the latency it adds over the small photo against that floor (target: at most
:data:`FLOOR_TARGET` times it).

The service then serves the same images once more on the 8-stack 256-feature architecture (the
package's default shape and that of the published MPII model; seeded random weights, as in the
overhead bench): what a large file adds is a constant number of milliseconds, so its share depends on
the model behind it.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable

from PIL import Image

from bench.common import (
    MIN_SAMPLES,
    JpegSpecs,
    Stats,
    add_common_args,
    photo_bytes,
    print_rows,
    profile_of,
    tiled_photo_jpeg,
    write_result,
)
from bench.fixture import BenchModel, bench_model, reference_model
from bench.rawhttp import RawClient, multipart_file
from bench.servers import served
from pose.geometry import draft_size, plan

SMALL = "photo 640x425"  # the test photo's own JPEG file; every other image is the photo tiled
SIZES: JpegSpecs = {
    "12MP 4000x3000": (4000, 3000, {}),
    "12MP 4000x3000, restart markers": (4000, 3000, {"restart_rows": 1}),
    "12MP 4000x3000, progressive": (4000, 3000, {"progressive": True}),
}
SMOKE_SIZES: JpegSpecs = {
    "smoke 1600x1200, restart markers": (1600, 1200, {"restart_rows": 1}),
    "smoke 2400x1800, progressive": (2400, 1800, {"progressive": True}),
}
FLOOR_TARGET = 1.15  # added latency at most this times the bare reduced-scale decode
BARE = "bare decode: "  # prefix of the floor's entries in a rotation


def bare_decode(data: bytes, input_size: tuple[int, int] = (256, 256)) -> Callable[[], object]:
    """The floor of ``data``'s decode: Pillow's reduced-scale decode to the size the service asks for."""
    with Image.open(io.BytesIO(data)) as probe:
        size = probe.size
    want = draft_size(size, plan(size, input_size))

    def decode() -> object:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", want)
            image.load()
            return image.size

    return decode


def alternate(
    client: RawClient, images: dict[str, bytes], warmup: int, repeat: int, budget_s: float
) -> dict[str, tuple[Stats, float | None]]:
    """Per image: latency stats and the median decode stage the server reported (None if it reports none),
    posting each image in turn from the minimal client (:mod:`bench.rawhttp`: each request is built once,
    so the client adds no per-call encoding of the file), with each large image's :func:`bare_decode` in
    the same rotation (entries ``BARE + name``); stops early once ``budget_s`` is spent."""
    requests = {
        name: client.prepare("POST", "/predict", *multipart_file("file", "photo.jpg", data, "image/jpeg"))
        for name, data in images.items()
    }
    floors = {BARE + name: bare_decode(data) for name, data in images.items() if name != SMALL}
    samples: dict[str, list[float]] = {name: [] for name in [*images, *floors]}
    decode: dict[str, list[float]] = {name: [] for name in images}
    started = time.perf_counter()
    for i in range(warmup + repeat):
        if i >= warmup + MIN_SAMPLES and time.perf_counter() - started > budget_s:
            break
        for name, request in requests.items():
            t0 = time.perf_counter()
            reply = client.send(request)
            elapsed = time.perf_counter() - t0
            reply.ok(f"POST /predict of {name}")
            floor = floors.get(BARE + name)
            if floor is not None:
                t1 = time.perf_counter()
                floor()
                if i >= warmup:
                    samples[BARE + name].append(time.perf_counter() - t1)
            if i >= warmup:
                samples[name].append(elapsed)
                ms = reply.json().get("timings_ms", {}).get("decode")
                if ms is not None:
                    decode[name].append(float(ms))
    return {
        name: (Stats.of(s), round(statistics.median(decode[name]), 3) if decode.get(name) else None)
        for name, s in samples.items()
    }


def measure_server(
    kind: str, model: BenchModel, images: dict[str, bytes], warmup: int, repeat: int, budget_s: float
) -> list[dict[str, object]]:
    """The table rows of one server on one model: each image against the small photo, and what each large
    one adds against its bare reduced-scale decode measured in the same rotation."""
    with served(kind, model) as base, RawClient(base, timeout=120.0) as client:
        stats = alternate(client, images, warmup, repeat, budget_s)
    small = stats[SMALL][0].median_ms
    served_model = {"architecture": model.architecture, "source": model.source}
    rows: list[dict[str, object]] = []
    for name in images:
        s, decode_ms = stats[name]
        row: dict[str, object] = {
            "server": kind,
            "model": served_model,
            "image": name,
            "jpeg_kb": round(len(images[name]) / 1024, 1),
            **s.as_dict(),
            "vs_small": round(s.median_ms / small, 3),
            "decode_ms": decode_ms,
        }
        if BARE + name in stats:
            floor = stats[BARE + name][0]
            added = s.median_ms - small
            row |= {
                "added_ms": round(added, 3),
                "bare_decode_ms": floor.median_ms,
                "bare_decode_p95_ms": floor.p95_ms,
                "added_vs_bare_decode": round(added / floor.median_ms, 3),
            }
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.large_upload", description=__doc__)
    add_common_args(parser)
    parser.add_argument(
        "--servers", nargs="+", default=None, choices=["service", "baseline"], help="default: both (smoke: service)"
    )
    args = parser.parse_args(argv)
    profile = profile_of(args)
    model = bench_model(args.smoke, args.model)
    sizes = SMOKE_SIZES if args.smoke else SIZES
    images = {SMALL: photo_bytes()}
    images |= {name: tiled_photo_jpeg(w, h, **written) for name, (w, h, written) in sizes.items()}
    budget_s = 2 * profile.case_budget_s
    rows = []
    kinds = args.servers or (["service"] if args.smoke else ["service", "baseline"])
    for kind in kinds:
        rows += measure_server(kind, model, images, profile.warmup, profile.repeat, budget_s)
    described: dict[str, object] = {SMALL: "tests/data/000000000785.jpg"}
    described |= {
        name: {"size": [w, h], "content": "tiled photo", **written} for name, (w, h, written) in sizes.items()
    }
    config: dict[str, object] = {
        "model": model.describe(),
        "profile": profile.name,
        "images": described,
        "floor": "bare decode: Pillow draft to the service's requested size, then load, in this process",
        "floor_target": FLOOR_TARGET,
    }
    if "service" in kinds:  # a few hundred ms a call on a CPU: fewer calls, the same alternation
        reference = reference_model(args.smoke)
        rows += measure_server("service", reference, images, min(profile.warmup, 2), profile.repeat, budget_s)
        config["reference_model"] = reference.describe()
    print_rows("large uploads, end to end", rows)
    write_result(args.out, "large_upload", config, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
