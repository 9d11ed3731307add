"""Benchmark 3: throughput under load. Requests per second and p50/p95 latency at 1, 4, 16 and 64
concurrent clients (photo 640x425), for the service and the baseline, each a real uvicorn subprocess.

Both servers are started up front and measured in turn at each level, so a change in machine load
between levels hits both alike.
"""

from __future__ import annotations

import argparse
import contextlib

from bench.common import add_common_args, photo_bytes, print_rows, profile_of, write_result
from bench.fixture import bench_model
from bench.loadgen import run_load
from bench.servers import served


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    add_common_args(parser)
    parser.add_argument("--servers", nargs="+", default=["service", "baseline"], choices=["service", "baseline"])
    args = parser.parse_args(argv)
    profile = profile_of(args)
    model = bench_model(args.smoke, args.model)
    image = photo_bytes()
    rows = []
    with contextlib.ExitStack() as stack:
        urls = {kind: stack.enter_context(served(kind, model)) for kind in args.servers}
        for concurrency in profile.concurrency:
            for kind, url in urls.items():
                result = run_load(url + "/predict", image, concurrency, profile.load_seconds, profile.load_max_requests)
                rows.append({"server": kind, **result.as_dict()})
                print(f"  {rows[-1]}", flush=True)
    by_key = {(r["server"], r["concurrency"]): r for r in rows}
    for row in rows:
        peer = by_key.get(("baseline", row["concurrency"]))
        if row["server"] != "baseline" and peer and peer["rps"]:
            row["vs_baseline_rps"] = round(float(row["rps"]) / float(peer["rps"]), 2)  # type: ignore[arg-type]
    rows.sort(key=lambda r: (args.servers.index(str(r["server"])), r["concurrency"]))  # type: ignore[arg-type]
    print_rows("throughput under load (photo 640x425)", rows)
    config = {
        "model": model.describe(),
        "profile": profile.name,
        "seconds_per_level": profile.load_seconds,
        "max_requests_per_level": profile.load_max_requests,
        "note": "the load generator runs on the same machine as the servers",
    }
    write_result(args.out, "load", config, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
