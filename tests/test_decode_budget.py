"""The decode budget: each decode's memory estimated from its header, and all decodes in flight bounded together.

The estimate (``service.imaging.budget.decode_bytes``) must be an upper bound of what decoding really costs,
so each case decodes a 2000x2000 image in a fresh process and compares the growth of its peak RSS with it.
The budget itself is checked in-process (refusals, waiting, no leaked bytes), then on a running server:
four concurrent 16-bit PNGs of 12 megapixels, which grew the server's peak RSS by 275 MB over one such
request before the budget existed, now grow it by a few MB.
"""

from __future__ import annotations

import asyncio
import gc
import io
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from service.imaging.budget import DecodeBudget, DecodeBusy, DecodeTooLarge, decode_bytes, held_bytes
from service.imaging.decode import Decoder, open_image
from service.inference.engine import Engine
from service.inference.pipeline import DirectInference, Pipeline, PredictOptions, Upload
from service.inference.runtime import SessionOptions
from tests.helpers.server import REPO_ROOT, peak_rss, service_env

pytestmark = pytest.mark.reliability

MB = 1_000_000
SIDE = 2000


def pattern(side: int = SIDE) -> np.ndarray:
    """An RGB image with structure (compresses well, decodes like a picture)."""
    y, x = np.mgrid[0:side, 0:side]
    return np.stack([(x * 7) % 256, (y * 3) % 256, ((x + y) // 5) % 256], -1).astype(np.uint8)


def encoded(kind: str, side: int = SIDE) -> bytes:
    rgb = pattern(side)
    out = io.BytesIO()
    if kind == "rgba_png":
        Image.fromarray(np.dstack([rgb, rgb[..., 0]])).save(out, "PNG")
    elif kind == "la_png":
        Image.merge("LA", [Image.fromarray(rgb[..., 0]), Image.fromarray(rgb[..., 1])]).save(out, "PNG")
    elif kind == "palette_transparent_png":
        Image.fromarray(rgb).quantize(64).save(out, "PNG", transparency=3)
    elif kind == "i16_png":
        Image.fromarray(rgb[..., 0].astype(np.uint16) * 250).save(out, "PNG")
    elif kind == "float_tiff":
        Image.fromarray(rgb[..., 0].astype(np.float32) / 255).save(out, "TIFF", compression="tiff_adobe_deflate")
    elif kind == "cmyk_jpeg":
        Image.fromarray(rgb).convert("CMYK").save(out, "JPEG")
    elif kind == "rotated_jpeg":
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(rgb).save(out, "JPEG", exif=exif.tobytes())
    elif kind == "lossless_webp":
        Image.fromarray(np.dstack([rgb, rgb[..., 0]])).save(out, "WEBP", lossless=True)
    elif kind == "lossy_webp":
        Image.fromarray(rgb).save(out, "WEBP", quality=80)
    elif kind == "gif":
        Image.fromarray(rgb).quantize(64).save(out, "GIF")
    elif kind in ("tall_i16_png", "wide_i16_png", "tall_grey_png"):
        return thin_png(kind)
    else:
        raise ValueError(kind)
    return out.getvalue()


THIN = 5_000_000  # rows (or columns) of the thin images: a tenth of the pixel limit


def thin_png(kind: str) -> bytes:
    """1 x THIN (or THIN x 1) pixels: Pillow's per-row bookkeeping dominates the tall ones, libpng's rows the wide."""
    from tests.helpers.hostile_inputs import png_raw

    width, height = (THIN, 1) if kind.startswith("wide") else (1, THIN)
    depth = 8 if "grey" in kind else 16
    row = b"\x00" + b"\x00" * (width * depth // 8)
    return png_raw(width, height, depth, 0, zlib.compress(row * height, 9))


MEASURE = """
import sys
from service.imaging.decode import decode_rgb, open_image
def peak():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024
data = open(sys.argv[1], "rb").read()
before = peak()
opened = open_image(data, 50_000_000)
estimate = opened.decode_bytes
decoded = decode_rgb(opened)
assert decoded.image.mode == "RGB"
print(peak() - before, estimate)
"""

KINDS = [
    "rgba_png",
    "la_png",
    "palette_transparent_png",
    "i16_png",
    "float_tiff",
    "cmyk_jpeg",
    "rotated_jpeg",
    "lossless_webp",
    "lossy_webp",
    "gif",
    "tall_i16_png",
    "wide_i16_png",
    "tall_grey_png",
]


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_the_header_estimate_bounds_the_measured_peak_of_a_decode(kind, tmp_path):
    path = tmp_path / kind
    path.write_bytes(encoded(kind))
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)],
        cwd=REPO_ROOT, env=service_env(None), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    grown, estimate = map(int, result.stdout.split())
    assert grown <= estimate, f"{kind}: the peak RSS grew by {grown / MB:.0f} MB, estimated {estimate / MB:.0f}"
    assert estimate < 3 * grown + 40 * MB, f"{kind}: the estimate {estimate / MB:.0f} MB wastes the budget"


def test_the_estimate_uses_the_reduced_scale_a_large_jpeg_is_decoded_at():
    data = io.BytesIO()
    Image.fromarray(pattern(2400)).save(data, "JPEG")
    opened = open_image(data.getvalue(), 50_000_000)
    assert opened.decode_bytes == decode_bytes("RGB", (2400, 2400), "JPEG", may_rotate=False)
    opened.draft((256, 256))
    assert opened.scale == 8
    assert opened.decode_bytes == decode_bytes("RGB", (300, 300), "JPEG", may_rotate=False)


# ---------------------------------------------------------------- the budget
def test_a_decode_larger_than_the_whole_budget_is_refused_at_once():
    budget = DecodeBudget(100 * MB, wait_s=10.0)
    start = time.monotonic()
    with pytest.raises(DecodeTooLarge, match="about 101 MB, more than the 100 MB"):
        budget.acquire(100 * MB + 1)
    assert time.monotonic() - start < 1.0 and budget.used == 0


def test_a_decode_waits_for_its_share_and_is_refused_as_busy_past_the_wait():
    budget = DecodeBudget(100 * MB, wait_s=0.2)
    held = budget.acquire(70 * MB)
    start = time.monotonic()
    with pytest.raises(DecodeBusy):
        budget.acquire(40 * MB)
    assert 0.15 < time.monotonic() - start < 2.0
    with budget.acquire(30 * MB):  # what is left is granted at once
        assert budget.used == 100 * MB
    held.release()
    held.release()  # a second release gives nothing back twice
    assert budget.used == 0


def test_a_waiting_decode_proceeds_as_soon_as_another_releases():
    budget = DecodeBudget(100 * MB, wait_s=10.0)
    held = budget.acquire(80 * MB)
    threading.Timer(0.2, held.release).start()
    start = time.monotonic()
    with budget.acquire(50 * MB):
        waited = time.monotonic() - start
    assert 0.1 < waited < 5.0 and budget.used == 0


def test_the_budget_is_never_exceeded_by_concurrent_decodes():
    budget = DecodeBudget(100 * MB, wait_s=30.0)
    peak = []
    lock = threading.Lock()

    def decode(nbytes: int) -> None:
        with budget.acquire(nbytes):
            with lock:
                peak.append(budget.used)
            time.sleep(0.01)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(decode, [30 * MB, 45 * MB, 60 * MB, 10 * MB] * 10))
    assert max(peak) <= 100 * MB and budget.used == 0


def test_a_reservation_dropped_without_release_gives_its_bytes_back():
    budget = DecodeBudget(100 * MB, wait_s=0.1)
    budget.acquire(60 * MB)  # dropped at once, as by a request abandoned mid-way
    gc.collect()
    assert budget.used == 0


# ---------------------------------------------------------------- the pipeline
@pytest.fixture
def png_upload() -> Upload:
    out = io.BytesIO()
    Image.fromarray(pattern(600)).save(out, "PNG")
    return Upload(out.getvalue(), "image/png")


def test_the_pipeline_decodes_within_its_budget_and_leaks_nothing(constant_model_path, png_upload):
    engine = Engine.load(constant_model_path, SessionOptions(intra_op_threads=1))
    budget = DecodeBudget(50 * MB, wait_s=1.0)
    pipeline = Pipeline(engine.info, DirectInference(engine.run), Decoder(10_000_000, budget=budget))
    assert len(asyncio.run(pipeline.predict_uploads([png_upload] * 3, PredictOptions()))) == 3
    assert budget.used == 0

    kept = asyncio.run(pipeline.predict_uploads([png_upload], PredictOptions(), keep_images=True))
    # held while the caller draws: what the decoded image keeps, not the decode's peak
    assert budget.used == held_bytes(kept[0].decoded().image.size) < open_image(png_upload.data, 10**7).decode_bytes
    kept[0].decoded().release()
    assert budget.used == 0

    broken = Upload(png_upload.data[:2000], "image/png")  # the second image fails after the first was kept
    with pytest.raises(Exception, match="truncated or corrupt"):
        asyncio.run(pipeline.predict_uploads([png_upload, broken], PredictOptions(), keep_images=True))
    assert budget.used == 0

    small = Pipeline(engine.info, DirectInference(engine.run), Decoder(10_000_000, budget=DecodeBudget(MB, wait_s=1.0)))
    with pytest.raises(DecodeTooLarge):
        asyncio.run(small.predict_uploads([png_upload], PredictOptions()))


# ---------------------------------------------------------------- the server
def sixteen_bit_png(side: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((side, side), 40000, np.uint16)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.slow
def test_concurrent_large_decodes_stay_within_the_servers_budget(constant_model_path, start_service):
    """Four 12-megapixel 16-bit PNGs at once: about 110 MB each to decode, 150 MB of budget for all."""
    server = start_service(
        constant_model_path, max_concurrency=4, decode_memory_mb=150, max_pixels=20_000_000, request_timeout_s=60
    )
    body = sixteen_bit_png(3500)
    assert len(body) < 200_000
    with server.client(timeout=60.0) as client:
        assert client.post("/predict", content=body, headers={"content-type": "image/png"}).status_code == 200
        before = peak_rss(server.process.pid)

        def post(_: int) -> int:
            return client.post("/predict", content=body, headers={"content-type": "image/png"}).status_code

        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(post, range(8)))
        grown = peak_rss(server.process.pid) - before
        assert statuses == [200] * 8, statuses
        # one decode at a time fits the budget, and every thread reuses the one heap (service.allocator):
        # measured +3 MB; +173 MB with a glibc heap per thread, +275 MB with no budget
        assert grown < 75 * MB, f"the server's peak RSS grew by {grown / MB:.0f} MB over one request"

        too_big = sixteen_bit_png(4300)  # 18.5 megapixels: about 170 MB to decode alone
        answer = client.post("/predict", content=too_big, headers={"content-type": "image/png"})
        assert answer.status_code == 413 and answer.json()["error"]["code"] == "image_too_large"
        assert client.get("/readyz").status_code == 200
