"""The decode stage alone: a 12-megapixel JPEG through the service's ``open_image`` + ``decode_rgb``.

The image (the test photo tiled with mirror flips: real photo content) is decoded at the scale the service
picks for a 256x256 model (1/8), written three ways:
baseline (one serial entropy-coded stream), with restart markers, and progressive. Beside the service
on 1, 2, 4, 8 and 16 threads (up to the usable cores), Pillow alone decodes it as the service did
before its JPEG paths (``Image.open``, ``draft`` to the same scale, ``load``); all are timed in turn,
call by call. Baseline files decode serially either way (the row shows what checking for markers
costs); restart-marker files are decoded in strips (``service/imaging/jpeg/strips.py``: the speed-up is how
the strips scale on this machine); progressive files without the AC scans 1/8 scale never reads
(``service/imaging/jpeg/progressive.py``, one thread).
"""

from __future__ import annotations

import argparse
import io

from PIL import Image

from bench.common import (
    JpegSpecs,
    add_common_args,
    print_rows,
    profile_of,
    tiled_photo_jpeg,
    time_alternating,
    write_result,
)
from pose.geometry import draft_size, plan
from service.cpus import usable_cores
from service.imaging.decode import decode_rgb, open_image

IMAGES: JpegSpecs = {
    "12MP 4000x3000": (4000, 3000, {}),
    "12MP 4000x3000, restart markers": (4000, 3000, {"restart_rows": 1}),
    "12MP 4000x3000, progressive": (4000, 3000, {"progressive": True}),
}
SMOKE_IMAGES: JpegSpecs = {
    "smoke 1600x1200, restart markers": (1600, 1200, {"restart_rows": 1}),
    "smoke 2400x1800, progressive": (2400, 1800, {"progressive": True}),
}
THREADS = (1, 2, 4, 8, 16)
INPUT_SIZE = (256, 256)
MAX_PIXELS = 50_000_000
PILLOW = "Pillow draft + load"
SERVICE = "service decode_rgb"


def decode_once(data: bytes, threads: int) -> None:
    """What the predictor does for one upload, up to the decoded RGB image."""
    opened = open_image(data, MAX_PIXELS, "image/jpeg")
    decode_rgb(opened, draft_size(opened.size, plan(opened.size, INPUT_SIZE)), threads)


def pillow_once(data: bytes) -> None:
    """Pillow alone at the scale the service picks: one serial decode of the whole file."""
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", draft_size(image.size, plan(image.size, INPUT_SIZE)))
    image.load()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.jpeg_decode", description=__doc__)
    add_common_args(parser)
    args = parser.parse_args(argv)
    profile = profile_of(args)
    cores = usable_cores()
    counts = [t for t in THREADS if t <= max(2, cores)]
    rows = []
    for name, (width, height, written) in (SMOKE_IMAGES if args.smoke else IMAGES).items():
        data = tiled_photo_jpeg(width, height, **written)
        calls = {(PILLOW, 1): lambda d=data: pillow_once(d)}
        calls.update({(SERVICE, t): (lambda t=t, d=data: decode_once(d, t)) for t in counts})
        stats = time_alternating(calls, profile.warmup, profile.repeat, profile.case_budget_s)
        pillow = stats[(PILLOW, 1)].median_ms
        for (decoder, threads), s in stats.items():
            row = {"image": name, "jpeg_kb": round(len(data) / 1024, 1), "decoder": decoder, "threads": threads}
            rows.append({**row, **s.as_dict(), "vs_pillow": round(pillow / s.median_ms, 3)})
    print_rows("JPEG decode stage, 1/8 scale", rows)
    config = {"profile": profile.name, "usable_cores": cores, "threads": counts, "input_size": list(INPUT_SIZE)}
    write_result(args.out, "jpeg_decode", config, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
