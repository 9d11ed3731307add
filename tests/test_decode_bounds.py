"""Decoding is bounded: no whole-image wide copies on the way to 8 bits, a batch holds one full-size decode
at a time, and a progressive JPEG's scan count is checked before it is decoded.

Each case decodes a near-limit image (7000x7000 = 49 megapixels, under the default 50 M pixel limit)
that compresses to a few hundred kilobytes, in a fresh process, and checks the peak RSS growth.
Measured on 2026-12-03: converting a strip at a time grows it by about 180 MB (16-bit PNG) and 190 MB
(float TIFF); the whole-image conversion it replaced grew it by 830 MB and 560 MB.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.hostile_inputs import scan_bomb
from tests.helpers.server import REPO_ROOT, service_env

pytestmark = pytest.mark.reliability

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


BATCH = """
import asyncio, resource, sys
from service.inference.engine import Engine
from service.inference.runtime import SessionOptions
from service.imaging.decode import Decoder
from service.inference.pipeline import DirectInference, Pipeline, PredictOptions, Upload
engine = Engine.load(sys.argv[1], SessionOptions(intra_op_threads=1))
pipeline = Pipeline(engine.info, DirectInference(engine.run), Decoder(50_000_000))
uploads = [Upload(open(path, "rb").read(), "image/png") for path in sys.argv[2:]]
asyncio.run(pipeline.predict_uploads(uploads[:1], PredictOptions()))  # one image: the floor
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
predictions = asyncio.run(pipeline.predict_uploads(uploads, PredictOptions()))
assert len(predictions) == len(uploads)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


@pytest.mark.slow
def test_a_batch_holds_one_full_size_decode_at_a_time(constant_model_path, tmp_path):
    """Six 20-megapixel PNGs (60 MB of RGB each) in one call cost no more than one of them."""
    paths = []
    for i in range(6):
        path = tmp_path / f"big{i}.png"
        Image.new("RGB", (5000, 4000), (40 * i, 90, 200)).save(path)
        paths.append(path)
    result = subprocess.run(
        [sys.executable, "-c", BATCH, str(constant_model_path), *map(str, paths)],
        cwd=REPO_ROOT, env=service_env(None), capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    grown = int(result.stdout.strip())
    assert grown < 100 * MB, f"the batch grew the peak RSS by {grown / MB:.0f} MB over one image"


def test_a_progressive_jpeg_of_thousands_of_scans_is_refused_from_its_header(constant_model_path):
    """The scan count is read before decoding: a 3,000-scan file is refused at once; a normal one is served."""
    from tests.helpers.server import ServiceProcess

    bomb = scan_bomb(3000)
    assert len(bomb) < 2 * MB
    with ServiceProcess(constant_model_path) as server, server.client(timeout=60) as client:
        start = time.monotonic()
        refused = client.post("/predict", content=bomb, headers={"content-type": "image/jpeg"})
        took = time.monotonic() - start
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "image_too_complex"
        assert took < 2.0, took
        served = client.post("/predict", content=scan_bomb(1), headers={"content-type": "image/jpeg"})
        assert served.status_code == 200, served.text
