"""Benchmark 1: the service's engines (ONNX Runtime float32 and int8, OpenVINO bfloat16 and float32 where this
CPU runs them) vs PyTorch eager on the same weights, batch 1 and 8, images/s.

Each engine runs with 1 thread and with one per usable core (the same count for all; on a shared
CPU, multi-threaded runs suffer most from the neighbours), opened as the service opens it
(:mod:`service.inference.runtime`); ``POSE_ENGINE=auto``'s choice on this CPU is marked. The int8 model is the
float file's static quantization (:func:`bench.fixture.int8_twin`: QDQ, per-channel int8 convolutions, made once
and cached). The engines are called in turn, so a change in machine load hits all alike.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from bench.common import add_common_args, print_rows, profile_of, time_alternating, write_result
from bench.fixture import bench_model, default_lsp, int8_twin, load_torch_model
from service.cpus import usable_cores
from service.inference.engine import Engine
from service.inference.runtime import cpu_choice, cpu_session, unavailable

# row name -> (POSE_ENGINE, int8 twin?)
ENGINES = {
    "onnxruntime float32": ("onnxruntime", False),
    "onnxruntime int8": ("onnxruntime", True),
    "openvino bfloat16": ("openvino-bf16", False),
    "openvino float32": ("openvino-f32", False),
}


def available(name: str) -> bool:
    return unavailable(ENGINES[name][0]) is None  # type: ignore[arg-type]


def auto_name() -> str:
    """The row ``POSE_ENGINE=auto`` runs on this machine's CPU."""
    engine, precision = cpu_choice("auto")
    return f"{engine} {precision}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.model_speed", description=__doc__)
    add_common_args(parser)
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="default: 1 8 (smoke: 1 2)")
    args = parser.parse_args(argv)
    profile = profile_of(args)
    model = bench_model(args.smoke, args.model)
    cores = usable_cores()
    thread_counts = [1] if args.smoke else sorted({1, cores})
    net = load_torch_model(model)
    int8 = int8_twin(model, args.smoke, default_lsp())

    rows = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        # each engine as the service opens it, with the same thread count as PyTorch
        loaded = {
            name: Engine.load(int8 if twin else model.onnx_path, cpu_session(choice, threads))  # type: ignore[arg-type]
            for name, (choice, twin) in ENGINES.items()
            if available(name)
        }
        for batch in args.batches or ([1, 2] if args.smoke else [1, 8]):
            x = np.random.default_rng(batch).random((batch, 3, 256, 256), dtype=np.float32)
            xt = torch.from_numpy(x)
            repeat = max(2, profile.repeat // max(1, batch // 2))

            def run_torch(xt: torch.Tensor = xt) -> None:
                with torch.inference_mode():
                    net(xt)[:, -1].numpy()

            engines = {name: lambda x=x, e=e: e.run(x) for name, e in loaded.items()}
            engines["pytorch eager"] = run_torch
            results = time_alternating(engines, profile.warmup, repeat, budget_s=profile.case_budget_s)
            reference = results["onnxruntime float32"].median_ms
            for name, stats in results.items():
                rows.append(
                    {
                        "engine": name + (" (auto)" if name == auto_name() else ""),
                        "vs_onnxruntime_float32": round(reference / stats.median_ms, 3),
                        "threads": threads,
                        "batch": batch,
                        "images_per_s": round(batch / (stats.median_ms / 1000), 2),
                        **stats.as_dict(),
                    }
                )
    print_rows("model: the engines vs PyTorch eager", rows)
    config = {
        "model": model.describe(),
        "auto_engine": auto_name(),
        "int8_model": str(int8),
        "profile": profile.name,
        "threads": thread_counts,
        "input": [256, 256],
    }
    write_result(args.out, "model_speed", config, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
