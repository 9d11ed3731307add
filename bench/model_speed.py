"""Benchmark 1: ONNX Runtime vs PyTorch eager on the same weights, batch 1 and 8, images per second.

Both engines use the same number of CPU threads (ONNX Runtime's default: one per core).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import onnxruntime as ort
import torch

from bench.common import add_common_args, print_rows, profile_of, time_calls, write_result
from bench.fixture import bench_model, load_torch_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.model_speed", description=__doc__)
    add_common_args(parser)
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="default: 1 8 (smoke: 1 2)")
    args = parser.parse_args(argv)
    profile = profile_of(args)
    model = bench_model(args.smoke, args.model)
    threads = 1 if args.smoke else len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model.onnx_path), options, providers=["CPUExecutionProvider"])
    net = load_torch_model(model)

    rows = []
    for batch in args.batches or ([1, 2] if args.smoke else [1, 8]):
        x = np.random.default_rng(batch).random((batch, 3, 256, 256), dtype=np.float32)
        xt = torch.from_numpy(x)
        repeat = max(2, profile.repeat // max(1, batch // 2))

        def run_torch(xt: torch.Tensor = xt) -> None:
            with torch.inference_mode():
                net(xt)[:, -1].numpy()

        engines = {
            "onnxruntime": lambda x=x: session.run(["heatmaps"], {"image": x}),
            "pytorch eager": run_torch,
        }
        for engine, fn in engines.items():
            stats = time_calls(fn, profile.warmup, repeat, budget_s=profile.case_budget_s)
            rows.append(
                {
                    "engine": engine,
                    "batch": batch,
                    "images_per_s": round(batch / (stats.median_ms / 1000), 2),
                    **stats.as_dict(),
                }
            )
    print_rows("model: ONNX Runtime vs PyTorch eager", rows)
    config = {"model": model.describe(), "profile": profile.name, "threads": threads, "input": [256, 256]}
    write_result(args.out, "model_speed", config, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
