"""Decode a large progressive JPEG at 1/8 scale without decoding what 1/8 scale never reads.

At 1/8 scale libjpeg-turbo computes each output pixel of a component sampled at the frame's maximum
factors (luma; every component of a 4:4:4 or greyscale file) from the block's DC coefficient alone
(``jpeg_idct_1x1``). Subsampled chroma is scaled by a larger IDCT, which reads AC coefficients too.
A baseline JPEG interleaves all coefficients in one Huffman stream, so libjpeg must read them all; a
progressive JPEG sends them in separate scans (ITU-T T.81, G.1), and for a 12-megapixel photo the
luma AC scans are most of the file and most of the decode: libjpeg keeps every coefficient of every
scan in memory and refines them scan by scan.

:func:`eighth_scale_jpeg` rewrites such a file: every scan is kept except the AC scans of the
full-resolution components, which are replaced by one AC scan per component saying "all zero" in a
few bytes (end-of-band runs, T.81 G.1.2.2). The coefficients 1/8 scale reads are unchanged, and the
AC coefficients are complete (zero), so libjpeg does not smooth them in either: the pixels are the
same as decoding the original (``tests/test_jpeg_progressive.py`` checks bit equality), in a quarter
of the time for a 12-megapixel photo (``bench/jpeg_decode.py``).

Anything unusual (not progressive Huffman, a DNL marker, a file without its end marker, a scan
that cannot be parsed) gives None, and the caller decodes the original file, which gives the answer
or the error.
"""

from __future__ import annotations

import re
import struct

from PIL import Image, features

from service.imaging.jpeg.markers import DHT, DNL, DRI, EOI, FRAME, SOS, next_segment, parse_frame
from service.imaging.jpeg.strips import decode_scaled

PROGRESSIVE_HUFFMAN_SOF = 0xC2
# The end of a scan's entropy-coded data: a marker other than a stuffed zero or RST0..RST7.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")
MAX_EOB_RUN = 2**15 - 1  # EOB14 plus 14 extra bits
# An AC Huffman table (class 1, id 0) holding the 15 end-of-band-run symbols EOB0..EOB14 (0x00, 0x10, .., 0xE0),
# every one with a 4-bit code: the code of EOBr is r.
_EOB_TABLE = bytes([0x10, 0, 0, 0, 15, *[0] * 12, *(r << 4 for r in range(15))])

TURBO = bool(features.check_feature("libjpeg_turbo"))  # the 1/8-scale IDCT rule above is libjpeg-turbo's


def decode_progressive(data: bytes, scale: int, mode: str, size: tuple[int, int]) -> Image.Image | None:
    """``data`` decoded at ``1/scale`` as ``mode`` of ``size`` from its rewrite (1/8 scale only), or None.

    None when there is no rewrite or it fails to decode: the caller then decodes ``data`` itself, and
    that decode gives the answer (or the error) for the file.
    """
    if scale != 8:
        return None
    rewritten = eighth_scale_jpeg(data)
    if rewritten is None:
        return None
    try:
        return decode_scaled(rewritten, scale, mode, size)
    except Exception:  # noqa: BLE001 - any failure: the original decode gives the authoritative answer or error
        return None


def eighth_scale_jpeg(data: bytes) -> bytes | None:
    """A JPEG that decodes at 1/8 scale to the same pixels as progressive ``data``, or None.

    None when ``data`` is not a progressive Huffman JPEG whose structure parses cleanly, or when
    nothing would be dropped.
    """
    if not TURBO or data[:2] != b"\xff\xd8":
        return None
    kept: list[bytes] = [data[:2]]
    full: dict[int, int] = {}  # full-resolution component id -> its number of 8x8 blocks
    restart = dropped = False
    i = 2
    while True:
        found = next_segment(data, i)
        if found is None:
            return None
        marker, start, end = found
        if marker == EOI:
            break
        if marker in FRAME:
            if marker != PROGRESSIVE_HUFFMAN_SOF or full:
                return None
            full = _full_resolution_blocks(data[start:end])
            if not full:
                return None
        elif marker == DRI:
            restart = True
        elif marker == DNL:  # the height comes after the first scan
            return None
        if marker != SOS:
            kept.append(data[start:end])
            i = end
            continue
        components = data[start + 4] if end > start + 4 else 0
        if not full or end - start != 8 + 2 * components:
            return None  # a scan before the frame header, or a malformed scan header
        scan = _SCAN_END.search(data, end)
        if scan is None:
            return None  # no end marker: truncated; the original decode reports it
        spectral_start = data[end - 3]
        if spectral_start > 0 and components == 1 and data[start + 5] in full:
            dropped = True  # AC coefficients 1/8 scale never reads
        else:
            kept.append(data[start : scan.start()])
        i = scan.start()
    if not dropped:
        return None
    if restart:
        kept.append(_segment(DRI, b"\x00\x00"))  # restart interval 0: the appended scans have no RSTn markers
    kept.append(_segment(DHT, _EOB_TABLE))
    kept.extend(_all_zero_ac_scan(component, blocks) for component, blocks in full.items())
    kept.append(b"\xff\xd9")
    return b"".join(kept)


def _full_resolution_blocks(sof: bytes) -> dict[int, int]:
    """Component id -> 8x8 blocks in its non-interleaved scans, for the components at the maximum sampling
    factors; empty when the frame header is malformed."""
    frame = parse_frame(sof)
    if frame is None:
        return {}
    # at the maximum factors a component has the image's own size: ceil(width / 8) x ceil(height / 8) blocks
    blocks = -(-frame.width // 8) * -(-frame.height // 8)
    return {c: blocks for c, h, v in frame.components if (h, v) == frame.max_factors}


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", 2 + len(payload)) + payload


def _all_zero_ac_scan(component: int, blocks: int) -> bytes:
    """A first AC scan (coefficients 1..63, full precision) of one component in which every block is empty."""
    header = _segment(SOS, bytes([1, component, 0x00, 1, 63, 0x00]))
    bits: list[tuple[int, int]] = []  # (value, length)
    while blocks > 0:
        run = min(blocks, MAX_EOB_RUN)
        r = run.bit_length() - 1  # EOBr: a run of 2**r plus r extra bits
        bits.append((r, 4))
        if r:
            bits.append((run - (1 << r), r))
        blocks -= run
    return header + _pack(bits)


def _pack(bits: list[tuple[int, int]]) -> bytes:
    """Entropy-coded bytes: the codes MSB first, padded with 1-bits, every 0xFF followed by a stuffed 0x00."""
    acc = length = 0
    for value, n in bits:
        acc, length = (acc << n) | value, length + n
    pad = -length % 8
    acc, length = (acc << pad) | ((1 << pad) - 1), length + pad
    raw = acc.to_bytes(length // 8, "big")
    return raw.replace(b"\xff", b"\xff\x00")
