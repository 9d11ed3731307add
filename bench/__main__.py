"""``python -m bench``: every benchmark in one invocation, then the tables of docs/benchmarks.md.

Parts run one after another on the same machine (``--only`` picks some); each is also runnable
alone as ``python -m bench.<part>``. ``--smoke`` checks the scripts work (tiny model, a couple of
iterations), ``--quick`` is for iterating; the default is the publishable run (about 6 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import importlib
import time

from bench.common import add_common_args

PARTS: tuple[str, ...] = (
    "decoder",
    "session_options",
    "model_speed",
    "accuracy_speed",
    "overhead",
    "large_upload",
    "people",
    "jpeg_decode",
    "load",
    "frameworks",
    "batching",
    "cpu_quota",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    add_common_args(parser)
    parser.add_argument("--only", nargs="+", choices=[*PARTS, "gpu"], default=None, help="run only these parts")
    parser.add_argument("--readme", default=None, help="also write the tables into this file (docs/benchmarks.md)")
    args = parser.parse_args(argv)
    common = ["--out", str(args.out)]
    common += ["--smoke"] if args.smoke else ["--quick"] if args.quick else []
    common += ["--model", str(args.model)] if args.model else []
    parts = list(args.only or PARTS)
    if args.only is None and _has_cuda():
        parts.append("gpu")
    for part in parts:
        started = time.perf_counter()
        print(f"\n#### bench.{part}", flush=True)
        if part == "gpu":
            from bench.gpu import bench_gpu

            bench_gpu.main(["--out", str(args.out), *(["--smoke"] if args.smoke else [])])
        else:
            importlib.import_module(f"bench.{part}").main(common)
        print(f"#### bench.{part}: {time.perf_counter() - started:.1f} s", flush=True)
    from bench import report

    report.main(["--results", str(args.out), *(["--readme", args.readme] if args.readme else [])])
    return 0


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


if __name__ == "__main__":
    raise SystemExit(main())
