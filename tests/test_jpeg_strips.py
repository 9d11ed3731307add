"""Restart-marker JPEGs decoded in strips on several threads: the same pixels as one serial decode."""

from __future__ import annotations

import io
import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from PIL import Image

from pose.errors import PoseError
from service.cpus import usable_cores
from service.imaging.decode import decode_rgb, open_image
from service.imaging.jpeg import strips as jpeg_strips
from service.imaging.jpeg.strips import (
    decode_in_strips,
    decode_threads,
    default_threads,
    plan_strips,
)
from tests.helpers.answers import http_answer
from tests.helpers.hostile_inputs import rgb_image
from tests.helpers.images import encode, with_orientation
from tests.helpers.mutations import byte_edits, edited

SMALL = 512  # bytes per strip at least, so that test-sized images split into many strips
WIDTH, HEIGHT = 611, 437  # not a multiple of any MCU size


def jpeg(image: Image.Image, **params: object) -> bytes:
    return encode(image, "JPEG", quality=90, **params)


def serial(data: bytes, scale: int) -> Image.Image:
    """The reference: Pillow decoding the whole file at 1/scale on one thread."""
    image = Image.open(io.BytesIO(data))
    image.draft(image.mode, (image.width // scale, image.height // scale))
    image.load()
    return image


def strips(data: bytes, scale: int, threads: int = 4) -> Image.Image | None:
    reference = serial(data, scale)
    return decode_in_strips(data, scale, reference.mode, reference.size, threads, SMALL)


def assert_same(got: Image.Image | None, want: Image.Image) -> None:
    assert got is not None, "decoded serially, not in strips"
    assert got.mode == want.mode and got.size == want.size
    assert np.array_equal(np.asarray(got), np.asarray(want))


PICTURE = rgb_image(WIDTH, HEIGHT, seed=3)
VARIANTS = {
    "4:2:0, marker every MCU row": (PICTURE, {"subsampling": 2, "restart_marker_rows": 1}),
    "4:2:2, marker every 3 rows": (PICTURE, {"subsampling": 1, "restart_marker_rows": 3}),
    "4:4:4, marker every 7 MCUs": (PICTURE, {"subsampling": 0, "restart_marker_blocks": 7}),
    "4:2:0, marker every third of a row": (PICTURE, {"subsampling": 2, "restart_marker_blocks": 13}),
    "grayscale": (PICTURE.convert("L"), {"restart_marker_rows": 1}),
    "CMYK": (PICTURE.convert("CMYK"), {"restart_marker_rows": 2}),
}


@pytest.mark.parametrize("scale", [2, 4, 8])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_strips_decode_to_the_serial_pixels(variant, scale):
    picture, params = VARIANTS[variant]
    data = jpeg(picture, **params)
    plan = plan_strips(data)
    assert plan is not None and len(plan.cuts(4, SMALL)) == 4  # really cut into four strips
    assert_same(strips(data, scale), serial(data, scale))


def test_concurrent_requests_share_the_strip_pool():
    files = [jpeg(picture, **params) for picture, params in VARIANTS.values()] * 3
    with ThreadPoolExecutor(6) as requests:  # more callers than the pool has threads
        results = list(requests.map(lambda data: strips(data, 2, threads=3), files))
    for data, result in zip(files, results, strict=True):
        assert_same(result, serial(data, 2))


def test_strips_follow_the_entropy_data_not_the_row_count():
    picture = np.asarray(PICTURE).copy()
    picture[: HEIGHT // 2] = 128  # the top half compresses to almost nothing
    data = jpeg(Image.fromarray(picture), restart_marker_rows=1)
    plan = plan_strips(data)
    assert plan is not None
    cuts = plan.cuts(2, SMALL)
    rows = [plan.row(k) for k in cuts]
    assert rows[0] == 0 and rows[1] * 16 > HEIGHT // 2  # the busy half is split, the flat half is one piece


@pytest.mark.parametrize(
    "params",
    [{}, {"progressive": True, "restart_marker_rows": 1}],
    ids=["no restart markers", "progressive"],
)
def test_files_without_a_plan_decode_serially(params):
    data = jpeg(PICTURE, **params)
    assert plan_strips(data) is None
    assert strips(data, 4) is None


def test_intervals_that_never_start_a_row_are_not_cut():
    data = jpeg(PICTURE, subsampling=2, restart_marker_blocks=150)  # 39 MCUs per row: rows start at 0 and 1950
    plan = plan_strips(data)
    assert plan is not None and plan.row_step == 13 > plan.count  # only interval 0 starts a row
    assert strips(data, 4) is None


def test_one_thread_or_full_scale_never_splits():
    data = jpeg(PICTURE, restart_marker_rows=1)
    assert strips(data, 4, threads=1) is None
    assert strips(data, 1) is None


def test_small_files_are_not_split():
    data = jpeg(PICTURE, restart_marker_rows=1)
    reference = serial(data, 2)
    assert decode_in_strips(data, 2, reference.mode, reference.size, 4) is None  # default: 128 KiB per strip


def _restart_offsets(data: bytes) -> list[int]:
    plan = plan_strips(data)
    assert plan is not None
    return plan.ends[:-1].tolist()


@pytest.mark.parametrize("damage", ["renumber", "drop", "stray", "truncate"])
def test_damaged_marker_sequences_have_no_plan(damage):
    data = bytearray(jpeg(PICTURE, restart_marker_rows=1))
    at = _restart_offsets(bytes(data))[5]
    if damage == "renumber":
        data[at + 1] = 0xD0 + (data[at + 1] - 0xD0 + 3) % 8
    elif damage == "drop":
        del data[at : at + 2]
    elif damage == "stray":
        data[at + 40 : at + 40] = b"\xff\xc4"
    else:
        del data[len(data) // 2 :]
    assert plan_strips(bytes(data)) is None


def test_corrupt_entropy_data_never_raises():
    data = bytearray(jpeg(PICTURE, restart_marker_rows=1))
    offsets = _restart_offsets(bytes(data))
    for k in range(offsets[2] + 2, offsets[3], 7):  # garble one restart interval
        if data[k] not in (0x00, 0xFF) and data[k - 1] != 0xFF:
            data[k] ^= 0x5A
    result = strips(bytes(data), 4)
    assert result is None or result.size == serial(bytes(data), 4).size


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_decode_rgb_gives_the_same_oriented_image_on_any_thread_count(orientation, monkeypatch):
    split: list[bool] = []

    def recorded(*args: object) -> Image.Image | None:  # the real function, its outcome noted
        result = jpeg_strips.decode_in_strips(*args)
        split.append(result is not None)
        return result

    monkeypatch.setattr("service.imaging.reader.decode_in_strips", recorded)
    data = with_orientation(rgb_image(1800, 1200, seed=4), orientation, restart_marker_rows=1)
    one, four = (decode_rgb(open_image(data, 10_000_000), (300, 200), threads) for threads in (1, 4))
    assert split == [True]  # one thread: never asked; four threads: decoded in strips
    assert one.size == four.size and one.reduction == four.reduction == 4.0
    assert np.array_equal(np.asarray(one.image), np.asarray(four.image))


def test_truncated_restart_jpeg_is_still_a_client_error():
    data = with_orientation(rgb_image(1800, 1200, seed=4), 1, restart_marker_rows=1)[:-200_000]
    for threads in (1, 4):
        with pytest.raises(PoseError) as caught:
            decode_rgb(open_image(data, 10_000_000), (300, 200), threads)
        assert http_answer(caught.value)[0] == 400


SEED = jpeg(PICTURE, restart_marker_rows=1)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(byte_edits(len(SEED)))
def test_mutated_restart_jpegs_never_raise(edits):
    data = edited(SEED, edits)
    try:
        reference = serial(data, 4)
    except Exception:  # noqa: BLE001 - Pillow rejects the file; the strips must still not raise
        reference = Image.new("RGB", (WIDTH // 4 + 1, HEIGHT // 4 + 1))
    result = decode_in_strips(data, 4, reference.mode, reference.size, 3, SMALL)
    assert result is None or (result.size == reference.size and result.mode == reference.mode)


def test_default_threads_is_bounded_by_the_cores():
    assert 1 <= default_threads() <= min(8, usable_cores())
    assert decode_threads(0) == default_threads()  # POSE_DECODE_THREADS=0
    assert decode_threads(3) == 3


def test_sof_height_is_rewritten_per_strip():
    data = jpeg(PICTURE, restart_marker_rows=1)
    plan = plan_strips(data)
    assert plan is not None
    cuts = plan.cuts(3, SMALL)
    heights = []
    for first, stop in zip(cuts, [*cuts[1:], plan.count], strict=True):
        strip, rows = plan.strip(first, stop)
        with Image.open(io.BytesIO(strip)) as image:
            assert image.size == (WIDTH, rows)
        (declared,) = struct.unpack_from(">H", plan.headers[plan.sof_index], 5)
        assert declared == HEIGHT  # the plan's own header is untouched
        heights.append(rows)
    assert sum(heights) == HEIGHT and all(h % 16 == 0 for h in heights[:-1])
