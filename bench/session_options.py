"""ONNX Runtime session options, measured: optimisation level, intra/inter-op threads, memory arena.

``python -m bench.session_options`` times batch-1 ``session.run`` for each variant (one option
changed at a time from ONNX Runtime's defaults), interleaving the variants round by round, and
writes ``session_options.json``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.common import Stats, add_common_args, print_rows, profile_of, write_result
from bench.fixture import bench_model

OPT_LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


@dataclass(frozen=True)
class Variant:
    name: str
    opt_level: str = "all"
    intra_op_threads: int = 0  # 0: ONNX Runtime's default (one per physical core)
    inter_op_threads: int = 0
    parallel: bool = False  # ORT_PARALLEL execution mode (inter-op threads used)
    cpu_arena: bool = True
    mem_pattern: bool = True
    spinning: bool = True  # intra-op worker threads busy-wait for work (ORT default)

    def options(self) -> ort.SessionOptions:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = OPT_LEVELS[self.opt_level]
        opts.intra_op_num_threads = self.intra_op_threads
        opts.inter_op_num_threads = self.inter_op_threads
        opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL if self.parallel else ort.ExecutionMode.ORT_SEQUENTIAL
        opts.enable_cpu_mem_arena = self.cpu_arena
        opts.enable_mem_pattern = self.mem_pattern
        if not self.spinning:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return opts


VARIANTS: tuple[Variant, ...] = (
    Variant("default (all, threads=auto, arena on)"),
    Variant("opt disabled", opt_level="disabled"),
    Variant("opt basic", opt_level="basic"),
    Variant("opt extended", opt_level="extended"),
    Variant("intra 1 thread", intra_op_threads=1),
    Variant("intra 2 threads", intra_op_threads=2),
    Variant("no spinning (service default)", spinning=False),
    Variant("parallel mode, inter 2", parallel=True, inter_op_threads=2),
    Variant("arena off", cpu_arena=False),
    Variant("mem pattern off", mem_pattern=False),
)


def measure(
    model_path: Path,
    warmup: int,
    repeat: int,
    variants: tuple[Variant, ...] = VARIANTS,
    batch: int = 1,
    rounds: int = 5,
    budget_s: float | None = None,
) -> list[dict[str, object]]:
    """Median/p95 per variant; variants are interleaved round by round so load drift hits them all alike.

    With ``budget_s``, no new round starts once that many seconds are spent (one round at least).
    """
    x = np.random.default_rng(0).random((batch, 3, 256, 256), dtype=np.float32)
    cpu = ["CPUExecutionProvider"]
    sessions = [ort.InferenceSession(str(model_path), v.options(), providers=cpu) for v in variants]
    samples: list[list[float]] = [[] for _ in variants]
    per_round = max(1, repeat // rounds)
    for session in sessions:
        for _ in range(min(warmup, 2)):  # every round re-warms each session as well
            session.run(None, {"image": x})
    started = time.perf_counter()
    for r in range(rounds):
        if r and budget_s is not None and time.perf_counter() - started > budget_s:
            break
        for session, bucket in zip(sessions, samples, strict=True):
            session.run(None, {"image": x})  # re-warm after the other variants ran
            for _ in range(per_round):
                t0 = time.perf_counter()
                session.run(None, {"image": x})
                bucket.append(time.perf_counter() - t0)
    rows: list[dict[str, object]] = []
    for variant, bucket in zip(variants, samples, strict=True):
        rows.append({"variant": variant.name, "batch": batch, **Stats.of(bucket).as_dict()})
    base = float(rows[0]["median_ms"])  # type: ignore[arg-type]
    for row in rows:
        row["vs_default"] = round(float(row["median_ms"]) / base, 3)  # type: ignore[arg-type]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.session_options", description=__doc__)
    add_common_args(parser)
    args = parser.parse_args(argv)
    profile = profile_of(args)
    model = bench_model(args.smoke, args.model)
    variants = VARIANTS[:1] + VARIANTS[6:7] if args.smoke else VARIANTS
    rows = measure(model.onnx_path, profile.warmup, profile.repeat, variants, budget_s=3 * profile.case_budget_s)
    print_rows("ONNX Runtime session options (batch 1, CPU)", rows)
    write_result(args.out, "session_options", {"model": model.describe(), "profile": profile.name}, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
