"""Benchmark 4: a 12-megapixel JPEG end to end vs a 640x480 one, for the service and the baseline."""

from __future__ import annotations

import argparse

import httpx

from bench.common import add_common_args, jpeg_bytes, print_rows, profile_of, time_calls, write_result
from bench.fixture import bench_model
from bench.servers import served

SIZES = {"640x480": (640, 480), "12MP 4000x3000": (4000, 3000)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.large_upload", description=__doc__)
    add_common_args(parser)
    parser.add_argument(
        "--servers", nargs="+", default=None, choices=["service", "baseline"], help="default: both (smoke: service)"
    )
    args = parser.parse_args(argv)
    profile = profile_of(args)
    model = bench_model(args.smoke, args.model)
    sizes = {"640x480": (640, 480), "smoke 1280x960": (1280, 960)} if args.smoke else SIZES
    images = {name: jpeg_bytes(w, h, seed=1) for name, (w, h) in sizes.items()}
    rows = []
    for kind in args.servers or (["service"] if args.smoke else ["service", "baseline"]):
        with served(kind, model) as base, httpx.Client(base_url=base, timeout=120.0) as client:
            small = None
            for name, data in images.items():

                def post(data: bytes = data) -> None:
                    client.post("/predict", files={"file": ("photo.jpg", data, "image/jpeg")}).raise_for_status()

                stats = time_calls(post, profile.warmup, profile.repeat, budget_s=profile.case_budget_s)
                small = small or stats.median_ms
                rows.append(
                    {
                        "server": kind,
                        "image": name,
                        "jpeg_kb": round(len(data) / 1024, 1),
                        **stats.as_dict(),
                        "vs_small": round(stats.median_ms / small, 3),
                    }
                )
    print_rows("large uploads, end to end", rows)
    config = {"model": model.describe(), "profile": profile.name, "images": {k: list(v) for k, v in sizes.items()}}
    write_result(args.out, "large_upload", config, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
