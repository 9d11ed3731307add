"""Benchmark 5: heatmap decoder, microseconds per image for 16 joints (``pose.codec``).

``quarter``, ``dark`` and ``none`` on 64x64 heatmaps at batch 1 and 8, next to the baseline's
Python loop over joints, timed in turn. Then ``quarter`` and the loop once more at batch 1, each call
right after an (untimed) model call, as in the service: the model's weights and activations have just
evicted the caches the decoder's code and data were in.
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.common import Stats, add_common_args, print_rows, profile_of, time_alternating, write_result
from bench.fixture import bench_model
from pose.codec import HeatmapCodec
from service.inference.engine import Engine
from service.settings import Settings

AFTER_MODEL = ", after a model call"


def gaussian_heatmaps(batch: int, joints: int = 16, size: int = 64, seed: int = 0) -> np.ndarray:
    """One Gaussian blob per map at a random sub-pixel location, plus a little noise."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(4, size - 5, (batch, joints, 2))
    grid = np.arange(size, dtype=np.float32)
    gx = np.exp(-((grid - centres[..., 0:1]) ** 2) / 2)[..., None, :]
    gy = np.exp(-((grid - centres[..., 1:2]) ** 2) / 2)[..., :, None]
    return (gx * gy + rng.normal(0, 0.01, (batch, joints, size, size))).astype(np.float32)


def python_loop_decode(heatmaps: np.ndarray) -> list[tuple[float, float, float]]:
    """What the baseline does: argmax and quarter offset joint by joint."""
    out = []
    for hm in heatmaps.reshape(-1, *heatmaps.shape[-2:]):
        y, x = divmod(int(hm.argmax()), hm.shape[1])
        fx, fy = float(x), float(y)
        if 0 < x < hm.shape[1] - 1:
            fx += 0.25 * np.sign(hm[y, x + 1] - hm[y, x - 1])
        if 0 < y < hm.shape[0] - 1:
            fy += 0.25 * np.sign(hm[y + 1, x] - hm[y - 1, x])
        out.append((fx, fy, float(hm[y, x])))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decoder", description=__doc__)
    add_common_args(parser)
    args = parser.parse_args(argv)
    profile = profile_of(args)
    codec = HeatmapCodec()
    repeat = profile.repeat * 5
    rows = []
    for batch in (1, 8):
        heatmaps = gaussian_heatmaps(batch)
        cases = {
            f"codec {refine}": (lambda r=refine, h=heatmaps: codec.decode(h, r))
            for refine in ("none", "quarter", "dark")
        }
        cases["python loop (baseline)"] = lambda h=heatmaps: python_loop_decode(h)
        timed = time_alternating(cases, profile.warmup * 5, repeat)
        rows += [_row(name, batch, stats) for name, stats in timed.items()]
    model = bench_model(args.smoke, args.model)
    engine = Engine.from_settings(Settings(model_path=str(model.onnx_path)))
    blank, heatmaps = engine.blank_batch(), gaussian_heatmaps(1)
    after_model = {
        "codec quarter": lambda: codec.decode(heatmaps, "quarter"),
        "python loop (baseline)": lambda: python_loop_decode(heatmaps),
    }
    timed = time_alternating(after_model, profile.warmup, profile.repeat, before=lambda: engine.run(blank))
    rows += [_row(name + AFTER_MODEL, 1, stats) for name, stats in timed.items()]
    print_rows("decoder: microseconds per image, 16 joints, 64x64 heatmaps", rows)
    config = {"profile": profile.name, "joints": 16, "heatmap": [64, 64], "model": model.describe()}
    write_result(args.out, "decoder", config, rows)
    return 0


def _row(name: str, batch: int, stats: Stats) -> dict[str, object]:
    return {
        "decoder": name,
        "batch": batch,
        "us_per_image": round(stats.median_ms * 1000 / batch, 1),
        "p95_us_per_image": round(stats.p95_ms * 1000 / batch, 1),
        "n": stats.n,
    }


if __name__ == "__main__":
    raise SystemExit(main())
