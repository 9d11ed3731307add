"""Decode one large JPEG on several cores, for JPEGs written with restart markers.

A baseline JPEG's entropy-coded data is one serial Huffman stream: decoding a 12-megapixel photo at
1/8 scale still reads all of it on one core (the README's large-upload benchmark). A JPEG written
with a restart interval (a ``DRI`` segment) resets its DC predictors and byte-aligns the stream at
every ``RSTn`` marker, so the data between two markers decodes on its own (ITU-T T.81). Where an
interval starts at the beginning of an MCU row, the file can be cut there into horizontal strips:
each strip becomes a JPEG of its own (the same tables, the strip's height in the frame header, its
markers renumbered from ``RST0``), the strips are decoded at the same DCT scale on a thread pool
(Pillow releases the GIL while it decodes) and pasted together. At 1/2, 1/4 and 1/8 scale libjpeg
scales chroma by its IDCT, not by upsampling across rows, so the result is pixel-identical to
decoding the file in one piece (``tests/test_jpeg_strips.py``).

Anything unusual (progressive or arithmetic coding, several scans, a missing or misnumbered marker,
intervals that never start an MCU row) means no plan and the caller decodes serially, as before.
"""

from __future__ import annotations

import functools
import io
import os
import struct
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SEQUENTIAL_HUFFMAN_SOF = (0xC0, 0xC1)  # baseline and extended sequential DCT, Huffman coded
MIN_STRIP_BYTES = 128 * 1024  # less entropy data per strip than this is not worth a thread hand-off
_SOI, _SOS, _DRI, _EOI = 0xD8, 0xDA, 0xDD, 0xD9
_APP0, _APP14, _COM = 0xE0, 0xEE, 0xFE
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # markers without a length field
# The default's cap: one upload need not queue strips on every core of a big host, and the serial part (marker
# scan, strip assembly: about 1 ms for 12 megapixels) bounds the gain from more threads anyway.
MAX_DEFAULT_THREADS = 8
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores() -> int:
    """CPU cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (containers)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota = cpu_quota(CGROUP_CPU_MAX.read_text())
    except OSError:
        quota = None
    return max(1, min(cores, quota)) if quota else cores


def cpu_quota(cpu_max: str) -> int | None:
    """Whole CPUs allowed by a cgroup v2 ``cpu.max`` ("200000 100000" -> 2, rounded up); None if unlimited."""
    parts = cpu_max.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return -(-quota // period) if quota > 0 and period > 0 else None


def default_threads() -> int:
    """Strip-decoding threads when ``POSE_DECODE_THREADS`` is 0: one per usable core, at most 8."""
    return min(usable_cores(), MAX_DEFAULT_THREADS)


@dataclass(frozen=True)
class StripPlan:
    """Where a restart-marker JPEG can be cut into horizontal strips, and how to rebuild each as a JPEG."""

    data: bytes
    headers: tuple[bytes, ...]  # the segments every strip keeps, SOI first, SOS last
    sof_index: int  # which of ``headers`` is the frame header (its height is rewritten per strip)
    size: tuple[int, int]  # (width, height) of the whole image
    mcu_height: int  # image rows per MCU row
    starts: tuple[int, ...]  # offset in ``data`` of each restart interval's first byte
    ends: tuple[int, ...]  # offset just past each interval's last byte (before its RSTn marker)
    row_of: dict[int, int]  # interval index -> the MCU row it starts, for intervals that start a row

    def cuts(self, parts: int, min_bytes: int = MIN_STRIP_BYTES) -> list[int]:
        """Up to ``parts`` interval indices (the first is 0) that split the entropy data about evenly,
        into strips of about ``min_bytes`` or more."""
        total = self.ends[-1] - self.starts[0]
        parts = max(1, min(parts, total // max(1, min_bytes)))
        candidates = sorted(self.row_of)
        chosen = [0]
        for i in range(1, parts):
            target = self.starts[0] + total * i / parts
            best = min(candidates, key=lambda k: abs(self.starts[k] - target))
            if best > chosen[-1]:
                chosen.append(best)
        return chosen

    def strip(self, first: int, stop: int) -> tuple[bytes, int]:
        """The JPEG of intervals ``[first, stop)`` and its height in image rows."""
        top = self.row_of[first] * self.mcu_height
        bottom = self.row_of[stop] * self.mcu_height if stop < len(self.starts) else self.size[1]
        sof = bytearray(self.headers[self.sof_index])
        sof[5:7] = struct.pack(">H", bottom - top)
        body = bytearray(self.data[self.starts[first] : self.ends[stop - 1]])
        for k in range(first, stop - 1):  # renumber RSTn so that the strip's first marker is RST0
            body[self.ends[k] - self.starts[first] + 1] = 0xD0 + (k - first) % 8
        headers = list(self.headers)
        headers[self.sof_index] = bytes(sof)
        return b"".join([*headers, body, b"\xff\xd9"]), bottom - top


def plan_strips(data: bytes) -> StripPlan | None:
    """Parse the markers of ``data``; None unless it is a one-scan Huffman JPEG with a restart interval."""
    if data[:2] != b"\xff\xd8":
        return None
    headers: list[bytes] = [b"\xff\xd8"]
    sof: bytes | None = None
    sof_index = interval = 0
    i = 2
    try:
        while True:
            while data[i] == 0xFF and data[i + 1] == 0xFF:  # fill bytes before a marker
                i += 1
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker in _STANDALONE or marker in (_SOI, _EOI):
                return None
            (length,) = struct.unpack_from(">H", data, i + 2)
            segment = data[i : i + 2 + length]
            if len(segment) != 2 + length or length < 2:
                return None
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                if marker not in SEQUENTIAL_HUFFMAN_SOF or sof is not None:
                    return None
                sof, sof_index = segment, len(headers)
            elif marker == _DRI:
                (interval,) = struct.unpack_from(">H", segment, 4)
            if marker == _SOS:
                headers.append(segment)
                i += 2 + length
                break
            # keep everything but metadata (EXIF, ICC, MPO index, comments); APP0 and APP14 say the colour space
            if not (0xE0 <= marker <= 0xEF and marker not in (_APP0, _APP14)) and marker != _COM:
                headers.append(segment)
            i += 2 + length
    except (IndexError, struct.error):
        return None
    if sof is None or interval == 0:
        return None
    return _plan_scan(data, i, tuple(headers), sof, sof_index, interval)


def _plan_scan(
    data: bytes, start: int, headers: tuple[bytes, ...], sof: bytes, sof_index: int, interval: int
) -> StripPlan | None:
    height, width, components = struct.unpack_from(">HHB", sof, 5)
    if height == 0 or width == 0 or len(sof) != 10 + 3 * components:
        return None
    sampling = [sof[11 + 3 * c] for c in range(components)]
    h_max, v_max = max(s >> 4 for s in sampling), max(s & 15 for s in sampling)
    sos = headers[-1]
    if h_max == 0 or v_max == 0 or len(sos) < 5 or sos[4] != components:
        return None  # a scan with fewer components than the frame: more scans follow
    if components == 1:  # a one-component scan is not interleaved: its MCU is one 8x8 block
        h_max = v_max = 1
    mcu_w, mcu_h = 8 * h_max, 8 * v_max
    per_row = -(-width // mcu_w)
    count = -(-(per_row * -(-height // mcu_h)) // interval)
    # Inside entropy-coded data every 0xFF byte is followed by a stuffed 0x00 or is a marker: RSTn in
    # order (RST0..RST7, RST0, ...), then EOI. Anything else (fill bytes, DNL, a stray marker): no plan.
    body = np.frombuffer(data, np.uint8, len(data) - start, start)
    at = np.flatnonzero((body[:-1] == 0xFF) & (body[1:] != 0))
    codes = body[at + 1]
    n = count - 1
    if len(at) <= n or codes[n] != _EOI:
        return None
    if not np.array_equal(codes[:n], 0xD0 + np.arange(n) % 8):
        return None
    restarts = (at[:n] + start).tolist()
    end = int(at[n]) + start
    row_of = {k: k * interval // per_row for k in range(count) if k * interval % per_row == 0}
    starts = (start, *(p + 2 for p in restarts))
    ends = (*restarts, end)
    return StripPlan(data, headers, sof_index, (width, height), mcu_h, starts, ends, row_of)


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="jpeg-strip")


def _decode_strip(data: bytes, scale: int, mode: str, size: tuple[int, int]) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.draft(mode, (max(1, image.width // scale), max(1, image.height // scale)))
    if image.size != size or image.mode != mode:
        raise ValueError(f"strip decodes to {image.mode} {image.size}, not {mode} {size}")
    image.load()
    return image


def decode_in_strips(
    data: bytes,
    scale: int,
    mode: str,
    size: tuple[int, int],
    threads: int,
    min_strip_bytes: int = MIN_STRIP_BYTES,
) -> Image.Image | None:
    """``data`` decoded at ``1/scale`` (2, 4 or 8) as ``mode`` of ``size``, on up to ``threads`` threads.

    None when the file cannot be cut (no restart interval, less than two strips' worth of data,
    anything unusual) or a strip fails to decode: the caller then decodes serially, and that decode
    gives the answer (or the error) for the file.
    """
    if threads < 2 or scale not in (2, 4, 8) or len(data) < 2 * min_strip_bytes:
        return None
    plan = plan_strips(data)
    if plan is None or _scaled(plan.size, scale) != size:
        return None
    cuts = plan.cuts(threads, min_strip_bytes)
    if len(cuts) < 2:
        return None
    strips = [plan.strip(first, stop) for first, stop in zip(cuts, [*cuts[1:], len(plan.starts)], strict=True)]
    shapes = [(size[0], -(-rows // scale)) for _, rows in strips]
    if sum(h for _, h in shapes) != size[1]:
        return None
    jobs = [(jpeg, scale, mode, shape) for (jpeg, _), shape in zip(strips, shapes, strict=True)]
    pool = _pool(threads - 1)  # the calling thread decodes the first strip itself
    futures: list[Future[Image.Image]] = [pool.submit(_decode_strip, *job) for job in jobs[1:]]
    try:
        parts = [_decode_strip(*jobs[0]), *(f.result() for f in futures)]
    except Exception:  # noqa: BLE001 - any failure: the serial decode gives the authoritative answer or error
        for future in futures:
            future.cancel()
        return None
    image = Image.new(mode, size)
    top = 0
    for part in parts:
        image.paste(part, (0, top))
        top += part.height
    return image


def _scaled(size: tuple[int, int], scale: int) -> tuple[int, int]:
    return -(-size[0] // scale), -(-size[1] // scale)
