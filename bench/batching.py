"""Dynamic batching on vs off on this machine: the service at 1, 4 and 16 concurrent clients for each
setting of ``POSE_BATCH_MAX_SIZE`` / ``POSE_BATCH_TIMEOUT_MS`` (max size 1 = batching off).

Every variant runs as its own server, all started up front; the measurement interleaves them
(each level, each round, every variant in turn) so that a change in machine load hits them alike.
"""

from __future__ import annotations

import argparse
import contextlib

from bench.common import add_common_args, photo_bytes, print_rows, profile_of, write_result
from bench.fixture import bench_model
from bench.loadgen import LoadResult, run_load
from bench.servers import served

VARIANTS: dict[str, dict[str, str]] = {
    "off (max 1)": {"POSE_BATCH_MAX_SIZE": "1"},
    "max 4, 2 ms": {"POSE_BATCH_MAX_SIZE": "4", "POSE_BATCH_TIMEOUT_MS": "2"},
    "max 8, 2 ms": {"POSE_BATCH_MAX_SIZE": "8", "POSE_BATCH_TIMEOUT_MS": "2"},
    "max 8, 10 ms": {"POSE_BATCH_MAX_SIZE": "8", "POSE_BATCH_TIMEOUT_MS": "10"},
}
ROUNDS = 2


def merge(parts: list[LoadResult]) -> dict[str, object]:
    """One row from several rounds: totals, overall rate, and the rounds' latency percentiles averaged."""
    ok = sum(p.requests - p.errors for p in parts)
    seconds = sum(p.seconds for p in parts)
    p50 = [p.p50_ms for p in parts if p.p50_ms is not None]
    p95 = [p.p95_ms for p in parts if p.p95_ms is not None]
    return {
        "concurrency": parts[0].concurrency,
        "requests": sum(p.requests for p in parts),
        "errors": sum(p.errors + p.abandoned for p in parts),
        "seconds": round(seconds, 3),
        "rps": round(ok / seconds, 2),
        "p50_ms": round(sum(p50) / len(p50), 2) if p50 else None,
        "p95_ms": round(sum(p95) / len(p95), 2) if p95 else None,
        "rounds_rps": [p.rps for p in parts],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batching", description=__doc__)
    add_common_args(parser)
    parser.add_argument("--variants", nargs="+", default=None, choices=list(VARIANTS), help="default: all")
    args = parser.parse_args(argv)
    profile = profile_of(args)
    model = bench_model(args.smoke, args.model)
    image = photo_bytes()
    levels = tuple(c for c in profile.concurrency if c <= 16)
    variants = args.variants or (["off (max 1)", "max 8, 2 ms"] if args.smoke else list(VARIANTS))
    rounds = 1 if args.smoke else ROUNDS
    seconds = profile.load_seconds * 0.75 / rounds
    parts: dict[tuple[str, int], list[LoadResult]] = {}
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(served("service", model, env=VARIANTS[name])) for name in variants}
        for concurrency in levels:
            for _ in range(rounds):
                for name, url in urls.items():
                    result = run_load(url + "/predict", image, concurrency, seconds, profile.load_max_requests)
                    parts.setdefault((name, concurrency), []).append(result)
                    print(f"  {name}: {result.as_dict()}", flush=True)
    rows = [{"server": name, **merge(results)} for (name, _), results in parts.items()]
    rows.sort(key=lambda r: (variants.index(str(r["server"])), r["concurrency"]))  # type: ignore[arg-type]
    print_rows("dynamic batching on CPU", rows)
    config = {
        "model": model.describe(),
        "profile": profile.name,
        "variants": {name: VARIANTS[name] for name in variants},
        "seconds_per_level_and_round": seconds,
        "rounds": rounds,
    }
    write_result(args.out, "batching", config, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
