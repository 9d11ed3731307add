"""Property-based fuzzing of the image-decoding path: whatever the bytes, the only exception
is a PoseError that the HTTP table answers with a 4xx.

Random bytes and mutations of valid images in every accepted format (bit flips, truncation, spliced
garbage, rewritten header size fields) go through the same two calls the service makes for an upload:
``open_image`` (header, limits) then ``decode_rgb`` (pixels, EXIF orientation, RGB). A coverage-guided
harness for the same target is ``fuzz/atheris_images.py``.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pose.errors import PoseError
from service.imaging.decode import DecodedImage, decode_rgb, open_image
from tests.helpers import hostile_inputs as corpus
from tests.helpers.answers import http_answer
from tests.helpers.server import REPO_ROOT

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns on every corrupt EXIF block
MAX_PIXELS = 1_000_000  # small, so mutated headers that claim huge sizes are refused cheaply
CLIENT_STATUSES = {400, 413, 415, 422}  # empty/corrupt, too large, unsupported, too complex (as the fuzzer)


def _seeds() -> list[tuple[bytes, str]]:
    rgb = corpus.rgb_image(40, 28)
    return [
        (corpus.jpeg(40, 28), "image/jpeg"),
        (corpus.png(40, 28), "image/png"),
        (corpus.encode(rgb, "WEBP", quality=80), "image/webp"),
        (corpus.encode(rgb, "BMP"), "image/bmp"),
        (corpus.encode(rgb, "TIFF"), "image/tiff"),
        (corpus.encode(rgb, "GIF"), "image/gif"),
        (corpus.encode(rgb, "JPEG", progressive=True), "image/jpeg"),
        # decoded at 1/8 scale for min_size (16, 16): through service.imaging.jpeg.progressive's rewrite
        (corpus.encode(corpus.rgb_image(160, 128), "JPEG", quality=60, progressive=True), "image/jpeg"),
        (corpus.encode(rgb.convert("LA"), "PNG"), "image/png"),
        (corpus.animated_gif(2), "image/gif"),
        (corpus.png_16bit_rgb(20, 14), "image/png"),
        (corpus.png_16bit_gray(20, 14), "image/png"),
        (corpus.cmyk_jpeg(), "image/jpeg"),
        (corpus.palette_png_with_transparency(), "image/png"),
    ]


SEEDS = _seeds()


def decode(data: bytes, content_type: str | None) -> DecodedImage:
    """The upload path of the service, minus HTTP."""
    opened = open_image(data, MAX_PIXELS, content_type)
    decoded = decode_rgb(opened, min_size=(16, 16))
    if decoded.image.mode != "RGB":
        raise AssertionError(f"decoded to mode {decoded.image.mode}, not RGB")
    if decoded.size != opened.size:
        raise AssertionError(f"reported size {decoded.size} differs from the header's {opened.size}")
    pixels, scale = decoded.image.size, decoded.reduction
    if any(abs(p * scale - full) > scale + 1 for p, full in zip(pixels, opened.size, strict=True)):
        raise AssertionError(f"decoded {pixels} at 1/{scale:g} does not cover the oriented size {opened.size}")
    return decoded


def check(data: bytes, content_type: str | None) -> None:
    try:
        decode(data, content_type)
    except PoseError as exc:
        status, code = http_answer(exc)
        assert status in CLIENT_STATUSES, f"client error with status {status}"
        assert code and exc.message


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, str]:
    data, content_type = draw(st.sampled_from(SEEDS))
    buffer = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "byte", "truncate", "splice", "size_field", "duplicate"]))
        if not buffer:
            break
        at = draw(st.integers(0, len(buffer) - 1))
        if kind == "flip":
            buffer[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            buffer[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, draw(st.integers(0, 255))]))
        elif kind == "truncate":
            del buffer[at:]
        elif kind == "splice":
            buffer[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "duplicate":
            end = min(len(buffer), at + draw(st.integers(1, 256)))
            buffer[at:at] = buffer[at:end]
        elif at + 4 <= len(buffer):  # a plausible width/height field gets an extreme value
            value = draw(st.sampled_from([0, 1, 0x7FFF, 0xFFFF, 0xFFFFFFFF, draw(st.integers(0, 0xFFFFFFFF))]))
            fmt = draw(st.sampled_from([">H", "<H", ">I", "<I"]))
            struct.pack_into(fmt, buffer, at, value & (0xFFFF if fmt.endswith("H") else 0xFFFFFFFF))
    return bytes(buffer), content_type


@pytest.mark.parametrize(("data", "content_type"), SEEDS, ids=[f"seed{i}" for i in range(len(SEEDS))])
def test_seeds_decode(data: bytes, content_type: str) -> None:
    decoded = decode(data, content_type)
    assert decoded.image.size[0] > 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048), st.sampled_from([None, "image/jpeg", "image/png", "image/svg+xml"]))
def test_random_bytes_only_raise_api_errors(data: bytes, content_type: str | None) -> None:
    check(data, content_type)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutated_images_only_raise_api_errors(case: tuple[bytes, str]) -> None:
    check(*case)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(SEEDS), st.integers(1, 4000))
def test_every_prefix_only_raises_api_errors(seed: tuple[bytes, str], cut: int) -> None:
    data, content_type = seed
    check(data[: cut % max(1, len(data))], content_type)


@pytest.mark.slow
def test_the_coverage_guided_harness_runs_clean(tmp_path) -> None:
    """``fuzz/atheris_images.py`` on its own seed corpus (valid images and bomb headers the service refuses), a few
    thousand mutations with a fixed seed: it must finish without a finding, so the harness cannot rot unnoticed."""
    harness = [sys.executable, str(REPO_ROOT / "fuzz" / "atheris_images.py")]
    corpus = tmp_path / "corpus"
    subprocess.run([*harness, "--write-seeds", str(corpus)], check=True, capture_output=True, timeout=60)
    run = subprocess.run(
        [*harness, str(corpus), "-runs=3000", "-seed=1", "-max_total_time=60", "-rss_limit_mb=2048", "-timeout=20"],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    done = re.search(r"Done (\d+) runs", run.stderr)  # libFuzzer may count the seed inputs' runs too
    assert done is not None and int(done.group(1)) >= 3000, run.stderr[-3000:]
    assert not list(tmp_path.glob("crash-*"))
