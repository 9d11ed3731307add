"""Header structure counted before Pillow parses it (``service/imaging/structure.py``): each repeated structure
is refused past its limit in milliseconds, and the files real cameras and editors write pass."""

from __future__ import annotations

import time

import pytest

from service.imaging import structure
from service.imaging.decode import TooComplex, open_image
from service.imaging.structure import ExcessiveStructure, check_structure
from tests.helpers import hostile_inputs as corpus

BOMBS = {
    "jpeg exif segments": lambda n: corpus.jpeg_with_segments(n),
    "jpeg comments": lambda n: corpus.jpeg_with_segments(n, b"\xff\xfe", b""),
    "png chunks": lambda n: corpus.png_with_chunks(n),
    "gif comment sub-blocks": lambda n: corpus.gif_with_comment(n),
    "tiff strips": lambda n: corpus.tiff_with_strips(n),
}
LIMITS = {
    "jpeg exif segments": structure.MAX_JPEG_APP1,
    "jpeg comments": structure.MAX_JPEG_SEGMENTS,
    "png chunks": structure.MAX_PNG_OTHER_CHUNKS,
    "gif comment sub-blocks": structure.MAX_GIF_SUB_BLOCKS,
    "tiff strips": structure.MAX_TIFF_VALUES,
}


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_a_header_bomb_is_refused_before_pillow_reads_it(kind: str) -> None:
    data = BOMBS[kind](400_000)
    start = time.perf_counter()
    with pytest.raises(TooComplex, match="real images have far fewer"):
        open_image(data, 50_000_000)
    assert time.perf_counter() - start < 0.05  # Pillow took seconds (and up to hundreds of MB) on these


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_a_header_just_within_its_limit_opens(kind: str) -> None:
    within = LIMITS[kind] - 20  # the small image's own segments or chunks count too
    opened = open_image(BOMBS[kind](within), 50_000_000)
    assert opened.size[0] >= 1
    with pytest.raises(ExcessiveStructure):
        check_structure(BOMBS[kind](LIMITS[kind] + 1))


@pytest.mark.parametrize(
    "data",
    [
        corpus.jpeg(),
        corpus.png(),
        corpus.encode(corpus.rgb_image(), "GIF"),
        corpus.encode(corpus.rgb_image(), "TIFF"),
        corpus.encode(corpus.rgb_image(), "WEBP"),
        corpus.encode(corpus.rgb_image(), "TIFF", big_tiff=True),
        b"",
        b"\xff\xd8",
        b"II*",
    ],
)
def test_ordinary_and_malformed_bytes_are_left_to_pillow(data: bytes) -> None:
    check_structure(data)  # no exception: ordinary files pass; malformed ones are Pillow's to refuse


def test_pillow_s_text_limit_is_named_in_the_service_s_words() -> None:
    import zlib

    text = corpus._png_chunk(b"zTXt", b"comment\x00\x00" + zlib.compress(b"a" * (2 << 20)))
    data = corpus.png(8, 8)
    with pytest.raises(TooComplex, match="decompresses to more than 1 MB") as raised:
        open_image(data[:33] + text + data[33:], 50_000_000)
    assert "PngImagePlugin" not in str(raised.value)


def test_a_raw_upload_s_header_bomb_is_refused_before_the_rest_arrives(constant_server) -> None:
    """The first 64 kB of a 1.9 MB bomb sent, the rest withheld: the 422 comes at once (the service checked the
    header as it arrived), not after the rest or the upload-pace 408."""
    import socket

    bomb = corpus.jpeg_with_segments(190_000)  # 1.9 MB
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(bomb)
    with socket.create_connection(("127.0.0.1", constant_server.port), timeout=10) as sock:
        sock.sendall(head + bomb[:70_000])
        start = time.monotonic()
        sock.settimeout(3.0)
        reply = sock.recv(65536)
        waited = time.monotonic() - start
        while b"}}" not in reply:  # the body may follow the head in a packet of its own
            more = sock.recv(65536)
            if not more:
                break
            reply += more
    assert reply.startswith(b"HTTP/1.1 422") and b"image_too_complex" in reply, reply[:300]
    assert waited < 2.0, waited
