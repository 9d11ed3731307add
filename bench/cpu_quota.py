"""ONNX Runtime under a container CPU quota: its own default thread pool vs the one the service asks for.

A CFS quota (``docker run --cpus``, a Kubernetes CPU limit) gives a cgroup N CPUs' worth of time per
100 ms period. ONNX Runtime's default intra-op pool has one thread per physical core of the host, so
under a quota it burns the period's budget early and waits, throttled, for the next one; the service
sizes the pool from the quota (:func:`service.cpus.intra_op_threads`).

``python -m bench.cpu_quota`` makes a cgroup with a quota of ``--cpus`` CPUs, then times batch-1
``session.run`` in child processes inside it, the two pools alternating process by process, and
writes ``cpu_quota.json``. It needs root and a cgroup ``cpu`` controller it may write (v1 or v2);
anywhere else it says why and writes nothing, so the README keeps the last measured table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bench.common import REPO_ROOT, Stats, add_common_args, print_rows, profile_of, write_result
from bench.fixture import bench_model
from service.cpus import MOUNTINFO, cgroup_mounts, cpu_limit, intra_op_threads, physical_cores

PERIOD_US = 100_000
POOLS = {
    "onnxruntime": "ONNX Runtime's default (one per physical core of the host)",
    "service": "the service's default (from the quota)",
}


class QuotaUnavailableError(RuntimeError):
    """No cgroup with a CPU quota can be made here (not root, no writable ``cpu`` controller)."""


@contextlib.contextmanager
def quota_cgroup(cpus: float) -> Iterator[Path]:
    """A fresh cgroup limited to ``cpus`` CPUs; yields its ``cgroup.procs`` file, removes the cgroup after."""
    try:
        text = MOUNTINFO.read_text()
    except OSError as exc:
        raise QuotaUnavailableError(f"no {MOUNTINFO} ({exc.strerror})") from exc
    errors = []
    # v1 first: a v2 tree has rules about where processes and controllers may sit
    for found in sorted((m for m in cgroup_mounts(text) if m.may_have_cpu), key=lambda m: m.version):
        mount = found.point
        directory = mount / f"hourglass-bench-{os.getpid()}"
        try:
            if found.version == 2:
                if "cpu" not in (mount / "cgroup.controllers").read_text().split():
                    raise QuotaUnavailableError("the cpu controller is not available")
                (mount / "cgroup.subtree_control").write_text("+cpu")
                directory.mkdir()
                (directory / "cpu.max").write_text(f"{round(cpus * PERIOD_US)} {PERIOD_US}")
            else:
                directory.mkdir()
                (directory / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (directory / "cpu.cfs_quota_us").write_text(str(round(cpus * PERIOD_US)))
        except (OSError, QuotaUnavailableError) as exc:
            errors.append(f"{mount}: {exc}")
            with contextlib.suppress(OSError):
                directory.rmdir()
            continue
        try:
            yield directory / "cgroup.procs"
        finally:
            for _ in range(50):  # a child that just exited may take a moment to leave the cgroup
                try:
                    directory.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
        return
    raise QuotaUnavailableError("; ".join(errors) or "no cgroup cpu controller is mounted")


def measure_in_process(model: Path, pool: str, warmup: int, repeat: int, budget_s: float) -> dict[str, object]:
    """Time ``session.run`` here with ``pool``'s thread count; also the threads ONNX Runtime started."""
    import onnxruntime as ort

    threads = 0 if pool == "onnxruntime" else intra_op_threads(0)
    before = len(os.listdir("/proc/self/task"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    started_threads = len(os.listdir("/proc/self/task")) - before
    x = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
    for _ in range(warmup):
        session.run(None, {"image": x})
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < repeat and (len(samples) < 5 or time.perf_counter() - started < budget_s):
        t0 = time.perf_counter()
        session.run(None, {"image": x})
        samples.append(time.perf_counter() - t0)
    return {"pool_threads": started_threads + 1, "quota_cpus": cpu_limit(), "samples": samples}


def _child(procs: Path, model: Path, pool: str, warmup: int, repeat: int, budget_s: float) -> dict[str, object]:
    command = [sys.executable, "-m", "bench.cpu_quota", "--child", str(procs), "--pool", pool, "--model", str(model)]
    command += ["--child-runs", str(warmup), str(repeat), str(budget_s)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_quota", description=__doc__)
    add_common_args(parser)
    parser.add_argument("--cpus", type=float, default=1.0, help="the quota, in CPUs (default: 1)")
    parser.add_argument("--rounds", type=int, default=None, help="child processes per pool (default: 3, smoke: 1)")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)  # the cgroup.procs to join
    parser.add_argument("--pool", choices=list(POOLS), default="service", help=argparse.SUPPRESS)
    parser.add_argument("--child-runs", nargs=3, type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:  # inside the cgroup: join it before ONNX Runtime starts any thread
        args.child.write_text(str(os.getpid()))
        warmup, repeat, budget_s = args.child_runs
        print(json.dumps(measure_in_process(args.model, args.pool, int(warmup), int(repeat), budget_s)))
        return 0

    profile = profile_of(args)
    model = bench_model(args.smoke, args.model)
    rounds = args.rounds or (1 if args.smoke else 3)
    per_child = max(2, profile.repeat // rounds)
    try:
        with quota_cgroup(args.cpus) as procs:
            runs: dict[str, list[dict[str, object]]] = {pool: [] for pool in POOLS}
            for _ in range(rounds):
                for pool in POOLS:
                    runs[pool].append(
                        _child(procs, model.onnx_path, pool, profile.warmup, per_child, profile.case_budget_s)
                    )
    except QuotaUnavailableError as exc:
        print(f"bench.cpu_quota skipped: cannot make a cgroup with a CPU quota here ({exc}); nothing written")
        return 0
    rows = []
    for pool, children in runs.items():
        samples = [s for child in children for s in child["samples"]]  # type: ignore[union-attr]
        first = children[0]
        rows.append(
            {
                "pool": POOLS[pool],
                "threads": first["pool_threads"],
                "quota_cpus_seen": first["quota_cpus"],
                **Stats.of(samples).as_dict(),
            }
        )
    base = float(rows[1]["median_ms"])  # type: ignore[arg-type]
    for row in rows:
        row["vs_service"] = round(float(row["median_ms"]) / base, 3)  # type: ignore[arg-type]
    print_rows(f"session.run under a {args.cpus:g}-CPU quota (batch 1)", rows)
    config = {
        "model": model.describe(),
        "profile": profile.name,
        "quota_cpus": args.cpus,
        "host_physical_cores": physical_cores(range(os.cpu_count() or 1)),
        "rounds": rounds,
    }
    write_result(args.out, "cpu_quota", config, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
