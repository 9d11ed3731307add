"""JPEG marker segments (ITU-T T.81, B.1): the one parser behind the service's JPEG rewrites.

:mod:`service.imaging.jpeg.strips` and :mod:`service.imaging.jpeg.progressive` both walk a file's segments before
they touch its entropy-coded data; :func:`next_segment` is that walk's step.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SOI, EOI, SOS, DHT, DRI, DNL = 0xD8, 0xD9, 0xDA, 0xC4, 0xDD, 0xDC
APP0, APP14, COM = 0xE0, 0xEE, 0xFE
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RST0..RST7: no length field
FRAME = frozenset(range(0xC0, 0xD0)) - {DHT, 0xC8, 0xCC}  # SOF0..SOF15 (C4 DHT, C8 JPG, CC DAC are not)


def next_segment(data: bytes, i: int) -> tuple[int, int, int] | None:
    """The segment whose marker starts at ``data[i]`` (after any fill bytes): ``(marker, start, end)``.

    ``data[start:end]`` is the marker and its payload; EOI, which has none, ends at ``start + 2``.
    None when ``data[i]`` is no marker, the marker cannot start a segment (SOI again, RSTn, TEM),
    or the segment's length is malformed or runs past the end of ``data``.
    """
    try:
        while data[i] == 0xFF and data[i + 1] == 0xFF:  # fill bytes before a marker
            i += 1
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == EOI:
            return marker, i, i + 2
        if marker == SOI or marker in STANDALONE:
            return None
        (length,) = struct.unpack_from(">H", data, i + 2)
    except (IndexError, struct.error):
        return None
    end = i + 2 + length
    if length < 2 or end > len(data):
        return None
    return marker, i, end


@dataclass(frozen=True)
class Frame:
    """A frame header (SOFn): the image size and each component's id and sampling factors."""

    width: int
    height: int
    components: tuple[tuple[int, int, int], ...]  # (id, horizontal factor, vertical factor)

    @property
    def max_factors(self) -> tuple[int, int]:
        """The largest horizontal and vertical sampling factors: those of a full-resolution component."""
        return max(h for _, h, _ in self.components), max(v for _, _, v in self.components)


def parse_frame(sof: bytes) -> Frame | None:
    """The frame header segment ``sof`` (marker included), or None when it is malformed: no pixels, no
    components, a length that does not match them, a sampling factor outside 1..4, a repeated id."""
    if len(sof) < 10:
        return None
    height, width, count = struct.unpack_from(">HHB", sof, 5)
    if height == 0 or width == 0 or count == 0 or len(sof) != 10 + 3 * count:
        return None
    components = tuple((sof[10 + 3 * c], sof[11 + 3 * c] >> 4, sof[11 + 3 * c] & 15) for c in range(count))
    if any(not (1 <= h <= 4 and 1 <= v <= 4) for _, h, v in components):
        return None
    if len({c for c, _, _ in components}) != count:
        return None
    return Frame(width, height, components)
