"""Benchmark 6: the 8-stack 256-feature hourglass on a GPU, batch 1 to 256.

PyTorch float32, float16 with channels_last, and float16 channels_last replayed as a CUDA graph;
plus ONNX Runtime's CUDA and TensorRT execution providers where ``onnxruntime-gpu`` provides them.
Each row gives images per second and the share of the machine's *measured* half-precision matrix
throughput (a large ``torch.matmul`` timed in this script) that the model's multiply-accumulates reach.

    python -m bench.gpu.bench_gpu --out "$OUT"        # on a GPU machine, writes $OUT/gpu.json
    python -m bench.gpu.bench_gpu --smoke --out /tmp  # CPU dry run: tiny model, batch 1-2, 2 iterations
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import RESULTS_DIR, machine_info, write_result
from model_export.model import StackedHourglass, count_macs

FULL_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


# ---------------------------------------------------------------------- timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], object], device: torch.device, warmup: int, iters: int) -> list[float]:
    """Seconds per call, each call timed alone after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        samples.append(time.perf_counter() - t0)
    return samples


def matmul_peak_flops(device: torch.device, smoke: bool) -> tuple[float, str]:
    """Measured dense matmul throughput (FLOP/s): float16 8192^3 on CUDA, float32 on CPU (smoke only)."""
    n, dtype = (256, torch.float32) if device.type != "cuda" else (8192, torch.float16)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    samples = time_fn(lambda: torch.matmul(a, b), device, warmup=1 if smoke else 5, iters=2 if smoke else 30)
    return 2.0 * n**3 / float(np.median(samples)), str(dtype).removeprefix("torch.")


# ---------------------------------------------------------------------- engines
class TorchVariant:
    """One way to run the PyTorch model: precision, memory format, optionally a CUDA graph per batch size."""

    def __init__(self, name: str, net: torch.nn.Module, dtype: torch.dtype, channels_last: bool, graph: bool):
        self.name, self.dtype, self.channels_last, self.graph = name, dtype, channels_last, graph
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.net = net.to(dtype=dtype, memory_format=fmt)

    def runner(self, x: torch.Tensor) -> Callable[[], object]:
        x = x.to(dtype=self.dtype, memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        if not self.graph:
            return lambda: self.net(x)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm-up outside the capture (cudnn algorithm choice, allocations)
                self.net(x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.net(x)
        return graph.replay


def torch_variants(net: torch.nn.Module, device: torch.device) -> list[TorchVariant]:
    import copy

    variants = [TorchVariant("pytorch fp32", copy.deepcopy(net), torch.float32, False, False)]
    if device.type == "cuda":
        half = copy.deepcopy(net)
        variants.append(TorchVariant("pytorch fp16 channels_last", half, torch.float16, True, False))
        variants.append(TorchVariant("pytorch fp16 channels_last + CUDA graph", half, torch.float16, True, True))
    else:  # smoke on CPU: exercise the channels_last path in float32 (CPU half convolutions are not the point)
        smoke = TorchVariant("pytorch fp32 channels_last (cpu smoke)", copy.deepcopy(net), torch.float32, True, False)
        variants.append(smoke)
    return variants


def ort_sessions(net: torch.nn.Module, size: int, max_batch: int, smoke: bool, workdir: Path) -> dict[str, Any]:
    """ONNX Runtime sessions for the CUDA and TensorRT providers that are installed (CPU in smoke runs)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return {}
    available = ort.get_available_providers()
    wanted: dict[str, list[Any]] = {}
    if "CUDAExecutionProvider" in available:
        wanted["onnxruntime CUDA fp32"] = [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "EXHAUSTIVE"})]
    if "TensorrtExecutionProvider" in available:
        shape = f"image:{{}}x3x{size}x{size}"
        trt = {
            "trt_fp16_enable": True,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(workdir / "trt-cache"),
            "trt_profile_min_shapes": shape.format(1),
            "trt_profile_opt_shapes": shape.format(min(32, max_batch)),
            "trt_profile_max_shapes": shape.format(max_batch),
        }
        wanted["onnxruntime TensorRT fp16"] = [("TensorrtExecutionProvider", trt), "CUDAExecutionProvider"]
    if smoke and not wanted:
        wanted["onnxruntime CPU (smoke)"] = ["CPUExecutionProvider"]
    if not wanted:
        return {}
    from model_export.export import export_onnx

    path = workdir / "hourglass.onnx"
    export_onnx(net.float().cpu(), path, (size, size), provenance={"source": "bench.gpu: random weights"})
    sessions = {}
    for name, providers in wanted.items():
        try:
            sessions[name] = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # noqa: BLE001 - a provider that fails to initialise is reported, not fatal
            print(f"  {name}: unavailable ({str(exc).splitlines()[0][:200]})", file=sys.stderr)
    return sessions


def ort_runner(session: Any, x: np.ndarray) -> Callable[[], object]:
    """``session.run`` with the input already on the device (I/O binding) where the provider is a GPU one."""
    import onnxruntime as ort

    if session.get_providers()[0] == "CPUExecutionProvider":
        return lambda: session.run(["heatmaps"], {"image": x})
    binding = session.io_binding()
    binding.bind_ortvalue_input("image", ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
    binding.bind_output("heatmaps", "cuda", 0)

    def run() -> None:
        session.run_with_iobinding(binding)

    return run


# ---------------------------------------------------------------------- sweep
def sweep(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:
        raise SystemExit("no CUDA device: this benchmark needs a GPU (use --smoke for a CPU dry run)")
    torch.backends.cudnn.benchmark = True
    if args.smoke:
        torch.set_num_threads(1)  # a dry run on a shared CPU: avoid OpenMP spin contention
    stacks, features, order, size = (1, 16, 4, 64) if args.smoke else (8, 256, 4, 256)
    batches = tuple(args.batches or ((1, 2) if args.smoke else FULL_BATCHES))
    warmup, iters = (1, 2) if args.smoke else (args.warmup, args.iters)

    torch.manual_seed(0)
    net = StackedHourglass(stacks, features, 16, order).eval()
    macs = count_macs(net, size, size)
    peak, peak_dtype = matmul_peak_flops(device, args.smoke)
    print(f"model {stacks}x{features}: {macs / 1e9:.2f} GMAC/image; {peak_dtype} matmul {peak / 1e12:.1f} TFLOP/s")

    rows: list[dict[str, Any]] = []

    def record(engine: str, batch: int, samples: list[float] | None, error: str | None = None) -> None:
        row: dict[str, Any] = {"engine": engine, "batch": batch}
        if samples:
            median = float(np.median(samples))
            row |= {
                "images_per_s": round(batch / median, 1),
                "median_ms": round(median * 1000, 3),
                "p95_ms": round(float(np.percentile(samples, 95)) * 1000, 3),
                "share_of_fp16_peak": round(2 * macs * batch / median / peak, 4),
            }
        else:
            row["error"] = error
        rows.append(row)
        print("  " + ", ".join(f"{k}={v}" for k, v in row.items()), flush=True)

    with torch.inference_mode():
        for variant in torch_variants(net, device):
            variant.net.to(device)
            for batch in batches:
                x = torch.rand(batch, 3, size, size, device=device)
                try:
                    samples = time_fn(variant.runner(x), device, warmup, iters)
                    record(variant.name, batch, samples)
                except torch.OutOfMemoryError:
                    record(variant.name, batch, None, "out of memory")
                    break
                finally:
                    del x
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
            variant.net.cpu()

    if not args.no_ort:
        with tempfile.TemporaryDirectory() as tmp:
            for name, session in ort_sessions(net, size, max(batches), args.smoke, Path(tmp)).items():
                for batch in batches:
                    x = np.random.default_rng(batch).random((batch, 3, size, size), dtype=np.float32)
                    try:
                        record(name, batch, time_fn(ort_runner(session, x), device, warmup, iters))
                    except Exception as exc:  # noqa: BLE001 - e.g. device memory exhausted at large batches
                        record(name, batch, None, str(exc).splitlines()[0][:200])
                        break

    gpu_info: dict[str, Any] = {"device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        gpu_info |= {
            "name": props.name,
            "memory_gib": round(props.total_memory / 2**30, 1),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        }
    return {
        "gpu": gpu_info,
        "model": {"stacks": stacks, "features": features, "joints": 16, "order": order, "input": [size, size]},
        "macs_per_image": macs,
        "fp16_matmul_tflops": round(peak / 1e12, 2),
        "matmul_dtype": peak_dtype,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu.bench_gpu", description=__doc__)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for gpu.json (on a GPU box: $OUT)")
    parser.add_argument("--smoke", action="store_true", help="CPU dry run: tiny model, batch 1-2, 2 iterations")
    parser.add_argument("--batches", type=int, nargs="+", default=None)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--no-ort", action="store_true", help="skip the ONNX Runtime providers")
    args = parser.parse_args(argv)
    results = sweep(args)
    config = {"smoke": args.smoke, "warmup": args.warmup, "iters": args.iters, "host": machine_info()["cpu_model"]}
    write_result(args.out, "gpu", config, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
