"""The JPEG marker-segment parser shared by the strip and progressive decoders."""

from __future__ import annotations

import struct

import pytest

from service.imaging.jpeg.markers import EOI, SOS, Frame, next_segment, parse_frame
from tests.helpers.hostile_inputs import jpeg


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", 2 + len(payload)) + payload


def sof(width: int, height: int, components: list[tuple[int, int, int]], marker: int = 0xC0) -> bytes:
    payload = struct.pack(">BHHB", 8, height, width, len(components))
    payload += b"".join(bytes([c, h << 4 | v, 0]) for c, h, v in components)
    return segment(marker, payload)


def test_walks_every_segment_of_a_real_jpeg_up_to_the_scan():
    data = jpeg(96, 64)
    i, markers = 2, []
    while True:
        found = next_segment(data, i)
        assert found is not None
        marker, start, i = found
        markers.append(marker)
        if marker == SOS:
            break
    assert markers[0] == 0xE0 and 0xDB in markers and 0xC4 in markers and 0xC0 in markers


def test_fill_bytes_before_a_marker_are_skipped():
    data = b"\xff\xff\xff" + segment(0xFE, b"hello")
    assert next_segment(data, 0) == (0xFE, 3, len(data))


def test_end_of_image_has_no_payload():
    assert next_segment(b"\x00\xff\xd9", 1) == (EOI, 1, 3)


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\xfe\x00\x04ab",  # not a marker
        b"\xff\xd8\x00\x04ab",  # SOI again
        b"\xff\xd3",  # RST3: no length, cannot start a segment
        b"\xff\x01",  # TEM
        b"\xff\xfe\x00\x09abc",  # length past the end
        b"\xff\xfe\x00\x01",  # length below its own two bytes
        b"\xff\xfe\x00",  # cut inside the length
        b"\xff",
        b"",
    ],
)
def test_malformed_segments_are_none(data):
    assert next_segment(data, 0) is None


def test_parses_a_frame_header():
    frame = parse_frame(sof(611, 437, [(1, 2, 2), (2, 1, 1), (3, 1, 1)]))
    assert frame == Frame(611, 437, ((1, 2, 2), (2, 1, 1), (3, 1, 1)))
    assert frame.max_factors == (2, 2)


@pytest.mark.parametrize(
    "header",
    [
        sof(0, 437, [(1, 1, 1)]),  # no columns
        sof(611, 0, [(1, 1, 1)]),  # no rows (DNL would give them)
        sof(611, 437, []),
        sof(611, 437, [(1, 0, 1)]),  # factor 0
        sof(611, 437, [(1, 5, 1)]),  # factor above 4
        sof(611, 437, [(1, 1, 1), (1, 1, 1)]),  # one id twice
        sof(611, 437, [(1, 1, 1)])[:-1],  # shorter than its components
        segment(0xC0, b"\x08\x01"),  # shorter than the fixed fields
    ],
)
def test_malformed_frame_headers_are_none(header):
    assert parse_frame(header) is None
