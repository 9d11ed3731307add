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

import io
import math
import struct
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from service.cpus import usable_cores
from service.imaging.jpeg.markers import APP0, APP14, COM, DRI, EOI, FRAME, SOS, next_segment, parse_frame

SEQUENTIAL_HUFFMAN_SOF = (0xC0, 0xC1)  # baseline and extended sequential DCT, Huffman coded
MIN_STRIP_BYTES = 128 * 1024  # less entropy data per strip than this is not worth a thread hand-off
# The default's cap: one upload need not queue strips on every core of a big host, and the serial part (marker
# scan, strip assembly: about 1 ms for 12 megapixels) bounds the gain from more threads anyway.
MAX_DEFAULT_THREADS = 8


def default_threads() -> int:
    """Strip-decoding threads when ``POSE_DECODE_THREADS`` is 0: one per usable core, at most 8."""
    return min(usable_cores(), MAX_DEFAULT_THREADS)


def decode_threads(configured: int) -> int:
    """The thread count a ``POSE_DECODE_THREADS`` value means: itself, or :func:`default_threads` for 0."""
    return configured or default_threads()


@dataclass(frozen=True)
class StripPlan:
    """Where a restart-marker JPEG can be cut into horizontal strips, and how to rebuild each as a JPEG.

    Interval ``k`` (0-based) is the entropy-coded data after ``RST(k-1)`` (after the scan header for
    ``k = 0``) up to ``RSTk`` (up to EOI for the last). Every ``row_step``-th interval starts an MCU row.
    """

    data: bytes
    headers: tuple[bytes, ...]  # the segments every strip keeps, SOI first, SOS last
    sof_index: int  # which of ``headers`` is the frame header (its height is rewritten per strip)
    size: tuple[int, int]  # (width, height) of the whole image
    mcu_height: int  # image rows per MCU row
    interval: int  # MCUs per restart interval
    per_row: int  # MCUs per MCU row
    row_step: int  # intervals from one row-starting interval to the next
    starts: np.ndarray  # offset in ``data`` of each interval's first byte
    ends: np.ndarray  # offset just past each interval's last byte (its RSTn marker, or EOI, follows)

    @property
    def count(self) -> int:
        """Number of restart intervals."""
        return len(self.starts)

    def row(self, k: int) -> int:
        """The MCU row that interval ``k`` (a multiple of ``row_step``) starts."""
        return k * self.interval // self.per_row

    def cuts(self, parts: int, min_bytes: int = MIN_STRIP_BYTES) -> list[int]:
        """Up to ``parts`` row-starting intervals (the first is 0) that split the entropy data about evenly,
        into strips of about ``min_bytes`` or more."""
        first, total = int(self.starts[0]), int(self.ends[-1] - self.starts[0])
        parts = max(1, min(parts, total // max(1, min_bytes)))
        candidates = np.arange(0, self.count, self.row_step)
        offsets = self.starts[candidates]
        chosen = [0]
        for i in range(1, parts):
            nearest = int(candidates[np.argmin(np.abs(offsets - (first + total * i / parts)))])
            if nearest > chosen[-1]:
                chosen.append(nearest)
        return chosen

    def strip(self, first: int, stop: int) -> tuple[bytes, int]:
        """The JPEG of intervals ``[first, stop)`` (row-starting ``first``) and its height in image rows."""
        top = self.row(first) * self.mcu_height
        bottom = self.row(stop) * self.mcu_height if stop < self.count else self.size[1]
        sof = bytearray(self.headers[self.sof_index])
        sof[5:7] = struct.pack(">H", bottom - top)
        offset = int(self.starts[first])
        body = bytearray(self.data[offset : int(self.ends[stop - 1])])
        markers = self.ends[first : stop - 1] - offset  # the strip's own RSTn, renumbered from RST0
        np.frombuffer(body, np.uint8)[markers + 1] = 0xD0 + np.arange(len(markers)) % 8
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
    while True:
        found = next_segment(data, i)
        if found is None or found[0] == EOI:
            return None
        marker, start, i = found
        segment = data[start:i]
        if marker in FRAME:
            if marker not in SEQUENTIAL_HUFFMAN_SOF or sof is not None:
                return None
            sof, sof_index = segment, len(headers)
        elif marker == DRI:
            if len(segment) < 6:
                return None
            (interval,) = struct.unpack_from(">H", segment, 4)
        if marker == SOS:
            headers.append(segment)
            break
        # keep everything but metadata (EXIF, ICC, MPO index, comments); APP0 and APP14 say the colour space
        if not (0xE0 <= marker <= 0xEF and marker not in (APP0, APP14)) and marker != COM:
            headers.append(segment)
    if sof is None or interval == 0:
        return None
    return _plan_scan(data, i, tuple(headers), sof, sof_index, interval)


def _plan_scan(
    data: bytes, start: int, headers: tuple[bytes, ...], sof: bytes, sof_index: int, interval: int
) -> StripPlan | None:
    frame = parse_frame(sof)
    if frame is None:
        return None
    width, height, components = frame.width, frame.height, len(frame.components)
    h_max, v_max = frame.max_factors
    sos = headers[-1]
    if len(sos) < 5 or sos[4] != components:
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
    if len(at) <= n or codes[n] != EOI:
        return None
    if not np.array_equal(codes[:n], 0xD0 + np.arange(n) % 8):
        return None
    restarts = at[:n] + start
    starts = np.concatenate([[start], restarts + 2])
    ends = np.concatenate([restarts, [int(at[n]) + start]])
    row_step = per_row // math.gcd(per_row, interval)
    return StripPlan(data, headers, sof_index, (width, height), mcu_h, interval, per_row, row_step, starts, ends)


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """One process-wide pool per size (its threads start on first use)."""
    with _POOLS_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="jpeg-strip")
        return _POOLS[workers]


def decode_scaled(data: bytes, scale: int, mode: str, size: tuple[int, int]) -> Image.Image:
    """JPEG ``data`` decoded at ``1/scale`` as ``mode``; ValueError unless that gives ``size``."""
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
    strips = [plan.strip(first, stop) for first, stop in zip(cuts, [*cuts[1:], plan.count], strict=True)]
    shapes = [(size[0], -(-rows // scale)) for _, rows in strips]
    if sum(h for _, h in shapes) != size[1]:
        return None
    jobs = [(jpeg, scale, mode, shape) for (jpeg, _), shape in zip(strips, shapes, strict=True)]
    pool = _pool(threads - 1)  # the calling thread decodes the first strip itself
    futures: list[Future[Image.Image]] = [pool.submit(decode_scaled, *job) for job in jobs[1:]]
    try:
        parts = [decode_scaled(*jobs[0]), *(f.result() for f in futures)]
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
