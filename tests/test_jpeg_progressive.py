"""Progressive JPEGs at 1/8 scale decoded from a rewrite without the unread AC scans: the same pixels."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from PIL import Image

from pose.errors import PoseError
from service.imaging.decode import decode_rgb, open_image
from service.imaging.jpeg import progressive as jpeg_progressive
from service.imaging.jpeg.progressive import decode_progressive, eighth_scale_jpeg
from tests.helpers.answers import http_answer
from tests.helpers.hostile_inputs import rgb_image
from tests.helpers.images import encode, with_orientation
from tests.helpers.mutations import byte_edits, edited

WIDTH, HEIGHT = 611, 437  # not a multiple of any MCU size
PICTURE = rgb_image(WIDTH, HEIGHT, seed=5)


def jpeg(image: Image.Image, **params: object) -> bytes:
    return encode(image, "JPEG", quality=90, progressive=True, **params)


def eighth(data: bytes) -> Image.Image:
    """The reference: Pillow decoding the whole file at 1/8 scale."""
    image = Image.open(io.BytesIO(data))
    image.draft(image.mode, (image.width // 8, image.height // 8))
    image.load()
    return image


def scans(data: bytes) -> list[tuple[int, ...]]:
    """(component ids..., Ss) of every scan header in ``data``."""
    found, at = [], data.find(b"\xff\xda")
    while at >= 0:
        (length,) = struct.unpack_from(">H", data, at + 2)
        count = data[at + 4]
        found.append((*data[at + 5 : at + 5 + 2 * count : 2], data[at + length - 1]))
        at = data.find(b"\xff\xda", at + 2 + length)
    return found


VARIANTS = {
    "4:2:0": (PICTURE, {"subsampling": 2}),
    "4:2:2": (PICTURE, {"subsampling": 1}),
    "4:4:4": (PICTURE, {"subsampling": 0}),
    "4:2:0, optimised tables": (PICTURE, {"subsampling": 2, "optimize": True}),
    "4:2:0, restart markers": (PICTURE, {"subsampling": 2, "restart_marker_rows": 1}),
    "grayscale": (PICTURE.convert("L"), {}),
    "CMYK": (PICTURE.convert("CMYK"), {}),
    # 217 x 151 = 32767 blocks: one maximal end-of-band run whose bits end in 0xFF bytes (stuffed)
    "grayscale, 32767 blocks": (rgb_image(1736, 1208, seed=6).convert("L"), {}),
    # 33 x 2100 = 69300 blocks: three runs
    "grayscale, 69300 blocks": (rgb_image(264, 16800, seed=7).convert("L"), {}),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_rewrite_decodes_to_the_same_pixels(variant):
    picture, params = VARIANTS[variant]
    data = jpeg(picture, **params)
    rewritten = eighth_scale_jpeg(data)
    assert rewritten is not None and len(rewritten) < len(data)
    want = eighth(data)
    got = decode_progressive(data, 8, want.mode, want.size)
    assert got is not None, "the rewrite did not decode"
    assert got.mode == want.mode and got.size == want.size
    assert np.array_equal(np.asarray(got), np.asarray(want))


def test_only_the_full_resolution_components_lose_their_ac_scans():
    data = jpeg(PICTURE, subsampling=2)
    ids = {c for scan in scans(data) for c in scan[:-1]}
    luma = min(ids)  # libjpeg numbers Y, Cb, Cr as 1, 2, 3
    original, rewritten = scans(data), scans(eighth_scale_jpeg(data))
    assert [s for s in rewritten if s[-1] == 0] == [s for s in original if s[-1] == 0]  # every DC scan kept
    chroma_ac = [s for s in original if s[-1] > 0 and s[0] != luma]
    assert [s for s in rewritten if s[-1] > 0 and s[0] != luma] == chroma_ac
    assert [s for s in rewritten if s[-1] > 0 and s[0] == luma] == [(luma, 1)]  # one all-zero scan instead


def end_of_band_runs(scan: bytes) -> list[int]:
    """The run lengths coded in the entropy data of an all-zero AC scan (4-bit EOBr codes, r extra bits)."""
    bits = "".join(f"{byte:08b}" for byte in scan.replace(b"\xff\x00", b"\xff"))
    runs, at = [], 0
    while len(bits) - at >= 4 and bits[at : at + 4] != "1111":  # 1111: padding
        r = int(bits[at : at + 4], 2)
        extra = int(bits[at + 4 : at + 4 + r] or "0", 2)
        runs.append((1 << r) + extra)
        at += 4 + r
    return runs


@pytest.mark.parametrize(("size", "subsampling"), [((611, 437), 2), ((1736, 1208), 0), ((264, 16800), 1)])
def test_the_all_zero_scan_covers_every_block_once(size, subsampling):
    data = jpeg(rgb_image(*size, seed=9), subsampling=subsampling)
    rewritten = eighth_scale_jpeg(data)
    sos = rewritten.rfind(b"\xff\xda")  # the last appended scan: every full-resolution component has this count
    entropy = rewritten[sos + 2 + struct.unpack_from(">H", rewritten, sos + 2)[0] : -2]
    runs = end_of_band_runs(entropy)
    assert sum(runs) == -(-size[0] // 8) * -(-size[1] // 8)
    assert all(run <= 32767 for run in runs)


@pytest.mark.parametrize(
    "data",
    [
        encode(PICTURE, "JPEG", quality=90),  # baseline
        encode(PICTURE, "PNG"),
        b"\xff\xd8",
        b"",
        jpeg(PICTURE)[:-2],  # no end marker
        jpeg(PICTURE)[: len(jpeg(PICTURE)) // 2],  # cut inside a scan
    ],
    ids=["baseline", "png", "soi only", "empty", "no eoi", "cut"],
)
def test_files_that_are_not_clean_progressive_jpegs_have_no_rewrite(data):
    assert eighth_scale_jpeg(data) is None


def test_other_scales_and_sizes_decode_the_original():
    data = jpeg(PICTURE)
    want = eighth(data)
    assert decode_progressive(data, 4, want.mode, want.size) is None
    assert decode_progressive(data, 8, want.mode, (want.width + 1, want.height)) is None


def test_without_libjpeg_turbo_nothing_is_rewritten(monkeypatch):
    monkeypatch.setattr(jpeg_progressive, "TURBO", False)
    assert eighth_scale_jpeg(jpeg(PICTURE)) is None


@pytest.mark.parametrize("orientation", [1, 6])
def test_decode_rgb_takes_the_rewrite_and_gives_the_same_image(orientation, monkeypatch):
    data = with_orientation(rgb_image(2400, 1800, seed=8), orientation, progressive=True, restart_marker_rows=1)
    used: list[bool] = []

    def recorded(*args: object) -> Image.Image | None:  # the real function, its outcome noted
        result = decode_progressive(*args)
        used.append(result is not None)
        return result

    monkeypatch.setattr("service.imaging.reader.decode_progressive", recorded)
    fast = decode_rgb(open_image(data, 10_000_000), (256, 192), threads=4)  # no strips for a progressive file
    monkeypatch.setattr("service.imaging.reader.decode_progressive", lambda *args: None)
    plain = decode_rgb(open_image(data, 10_000_000), (256, 192))
    assert used == [True]
    assert fast.size == plain.size and fast.reduction == plain.reduction == 8.0
    assert np.array_equal(np.asarray(fast.image), np.asarray(plain.image))


def test_a_truncated_progressive_jpeg_is_still_a_client_error():
    data = jpeg(rgb_image(2400, 1800, seed=8))
    for cut in (len(data) // 3, len(data) - 2):  # inside a kept scan; only the end marker missing
        with pytest.raises(PoseError) as caught:
            decode_rgb(open_image(data[:cut], 10_000_000), (256, 192))
        assert http_answer(caught.value)[0] == 400


SEED = jpeg(PICTURE)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(byte_edits(len(SEED)))
def test_mutated_progressive_jpegs_never_raise(edits):
    data = edited(SEED, edits)
    result = decode_progressive(data, 8, "RGB", (WIDTH // 8 + 1, HEIGHT // 8 + 1))
    assert result is None or (result.size == (WIDTH // 8 + 1, HEIGHT // 8 + 1) and result.mode == "RGB")
