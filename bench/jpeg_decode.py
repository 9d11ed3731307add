"""The decode stage alone: a 12-megapixel JPEG through the service's ``open_image`` + ``decode_rgb``.

The photo is decoded at the scale the service picks for a 256x256 model (1/8), with and without
restart markers, on 1, 2, 4, 8 and 16 threads (up to the usable cores); the thread counts are timed
in turn, call by call. Without markers every count decodes serially (the row shows what checking for
markers costs); with them the file is decoded in strips (``service/jpeg_strips.py``), and the
speed-up over one thread is how the strips scale on this machine.
"""

from __future__ import annotations

import argparse

from bench.common import add_common_args, jpeg_bytes, print_rows, profile_of, time_alternating, write_result
from service.cpus import usable_cores
from service.images import decode_rgb, open_image
from service.transform import draft_size, plan

IMAGES = {"12MP 4000x3000": (4000, 3000, 0), "12MP 4000x3000, restart markers": (4000, 3000, 1)}
SMOKE_IMAGES = {"smoke 1600x1200, restart markers": (1600, 1200, 1)}
THREADS = (1, 2, 4, 8, 16)
INPUT_SIZE = (256, 256)
MAX_PIXELS = 50_000_000


def decode_once(data: bytes, threads: int) -> None:
    """What the predictor does for one upload, up to the decoded RGB image."""
    opened = open_image(data, MAX_PIXELS, "image/jpeg")
    decode_rgb(opened, draft_size(opened.size, plan(opened.size, INPUT_SIZE)), threads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.jpeg_decode", description=__doc__)
    add_common_args(parser)
    args = parser.parse_args(argv)
    profile = profile_of(args)
    cores = usable_cores()
    counts = [t for t in THREADS if t <= max(2, cores)]
    rows = []
    for name, (width, height, restart_rows) in (SMOKE_IMAGES if args.smoke else IMAGES).items():
        data = jpeg_bytes(width, height, seed=1, restart_rows=restart_rows)
        calls = {t: (lambda t=t, d=data: decode_once(d, t)) for t in counts}
        stats = time_alternating(calls, profile.warmup, profile.repeat, profile.case_budget_s)
        single = stats[1].median_ms
        for threads, s in stats.items():
            row = {"image": name, "jpeg_kb": round(len(data) / 1024, 1), "threads": threads, **s.as_dict()}
            rows.append({**row, "vs_one_thread": round(single / s.median_ms, 3)})
    print_rows("JPEG decode stage, 1/8 scale", rows)
    config = {"profile": profile.name, "usable_cores": cores, "threads": counts, "input_size": list(INPUT_SIZE)}
    write_result(args.out, "jpeg_decode", config, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
