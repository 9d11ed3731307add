"""ONNX models side by side: ``session.run`` time of each, called in turn on the same real photo.

    python -m bench.compare_models weights/default.onnx OTHER.onnx [--batch 1 8] [--repeat 200]

Each model runs in the service's own engine and session options (``Engine.from_settings``), fed the
COCO test photo letterboxed to its input size the way ``POST /predict`` prepares it. The calls alternate,
model by model, so a change in the shared machine's load hits every model alike. Prints one row per model
and batch size (median, p95, min) and the ratio of each median to the first model's; ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import REPO_ROOT, machine_info, print_rows, time_alternating
from pose.geometry import plan
from service.imaging.resample import resample_into
from service.inference.engine import Engine
from service.settings import Settings

PHOTO = REPO_ROOT / "tests" / "data" / "000000000785.jpg"


def photo_batch(input_size: tuple[int, int], batch: int) -> np.ndarray:
    """The COCO test photo letterboxed to ``input_size``, repeated ``batch`` times."""
    with Image.open(PHOTO) as image:
        rgb = image.convert("RGB")
    one = np.zeros((3, *input_size), np.float32)
    resample_into(rgb, plan(rgb.size, input_size), one)
    return np.ascontiguousarray(np.broadcast_to(one, (batch, *one.shape)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare_models", description=__doc__.split("\n")[0])
    parser.add_argument("models", type=Path, nargs="+", help="ONNX files; the first is the reference")
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    engines = {str(path): Engine.from_settings(Settings(model_path=path)) for path in args.models}
    rows = []
    for batch in args.batch:
        inputs = {name: photo_batch(e.info.metadata.input_size, batch) for name, e in engines.items()}
        calls = {name: (lambda e=e, x=inputs[name]: e.run(x)) for name, e in engines.items()}
        stats = time_alternating(calls, args.warmup, args.repeat)
        reference = stats[str(args.models[0])].median_ms
        for name, s in stats.items():
            rows.append({"model": name, "batch": batch, **s.as_dict(), "vs_first": round(s.median_ms / reference, 3)})
    print_rows("session.run per model (interleaved, COCO photo letterboxed)", rows)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
