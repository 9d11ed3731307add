"""Decoding high-bit-depth images is bounded in memory: no whole-image wide copies on the way to 8 bits.

Each case decodes a near-limit image (7000x7000 = 49 megapixels, under the default 50 M pixel limit)
that compresses to a few hundred kilobytes, in a fresh process, and checks the peak RSS growth.
Measured on 2026-12-03: converting a strip at a time grows it by about 180 MB (16-bit PNG) and 190 MB
(float TIFF); the whole-image conversion it replaced grew it by 830 MB and 560 MB.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.server import REPO_ROOT, service_env

SIDE = 7000
MB = 2**20

MEASURE = """
import resource, sys
from service.imaging.decode import decode_rgb, open_image
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = decode_rgb(open_image(data, 50_000_000))
assert image.image.mode == "RGB" and image.size == ({side}, {side}), (image.image.mode, image.size)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024)
"""


def peak_growth(path: Path) -> int:
    """Bytes the peak RSS of a fresh process grows by while decoding ``path`` to RGB."""
    result = subprocess.run(
        [sys.executable, "-c", MEASURE.format(side=SIDE), str(path)],
        cwd=REPO_ROOT, env=service_env(None), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stdout.strip())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "fmt", "limit_mb", "fill"),
    [
        ("I;16", "PNG", 300, 40000),  # 2 bytes per sample: 98 MB decoded
        ("F", "TIFF", 320, 0.25),  # 4 bytes per sample: 196 MB decoded
    ],
)
def test_high_bit_depth_decode_stays_near_its_floor(mode, fmt, limit_mb, fill, tmp_path):
    if mode == "F":
        image = Image.new("F", (SIDE, SIDE), fill)
    else:
        image = Image.fromarray(np.full((SIDE, SIDE), fill, np.uint16))
    path = tmp_path / f"big.{fmt.lower()}"
    image.save(path, fmt, **({"compression": "tiff_adobe_deflate"} if fmt == "TIFF" else {}))
    del image
    assert path.stat().st_size < 2 * MB  # a small upload
    grown = peak_growth(path)
    assert grown < limit_mb * MB, f"decoding grew the peak RSS by {grown / MB:.0f} MB"
