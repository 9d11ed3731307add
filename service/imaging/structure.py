"""An image's header structure counted from its bytes, before Pillow parses it.

Pillow's header parsers run in the request's thread, outside the decode budget and the killable workers, and
their work grows with what the header repeats: one Python step per JPEG segment, PNG chunk, GIF sub-block or
TIFF value, and for some of them a copy of everything read so far (a 20 MB JPEG of 1.66 M tiny "Exif" segments
kept a core busy for minutes, a TIFF of 2.5 M strip offsets took 900 MB). :func:`check_structure` walks the same
structure itself, stopping as soon as a count passes its limit, so refusing such a file costs milliseconds and
no memory, and every file it lets through has a header that Pillow parses in proportion to what it shows.

The limits sit far above what cameras, phones and image editors write (a JPEG has 10-30 header segments, an
ICC profile at most 255 more; a PNG a few chunks plus one IDAT per 8-64 kB of pixel data; a GIF comment a few
sub-blocks; a TIFF 10-60 tags and a strip per few kilobytes) and well below what costs a noticeable fraction
of a second. Only the structure Pillow reads when it opens a file and decodes its first frame is counted.
"""

from __future__ import annotations

import struct

from pose.errors import PoseError

MAX_JPEG_SEGMENTS = 1_000  # header segments before the first scan (ICC profiles split into at most 255)
MAX_JPEG_APP1 = 64  # of them APP1 (Exif, XMP, extended XMP): Pillow re-reads Exif per segment (990 of 19 kB: 1 s)
MAX_PNG_CHUNKS = 20_000  # every chunk up to IEND: IDAT of 8 kB each would be 160 MB of pixel data
MAX_PNG_OTHER_CHUNKS = 1_000  # chunks that are not pixel data (IDAT, fdAT)
MAX_GIF_SUB_BLOCKS = 4_096  # extension sub-blocks before the first image (a 1 MB comment at 255 bytes each)
MAX_TIFF_TAGS = 2_000  # entries of the first image file directory
MAX_TIFF_VALUES = 65_536  # numbers in one tag (a strip or tile per value: 64 k strips, 64 k tiles)


class ExcessiveStructure(PoseError):
    """A header that repeats some structure far more often than any real image does."""


def check_structure(data: bytes) -> None:
    """Raise :class:`ExcessiveStructure` when the header of ``data`` passes a limit; otherwise do nothing (the
    format is told by its signature; malformed or unknown bytes are left for Pillow to refuse)."""
    if data.startswith(b"\xff\xd8"):
        _jpeg(data)
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        _png(data)
    elif data.startswith((b"GIF87a", b"GIF89a")):
        _gif(data)
    elif data.startswith((b"II", b"MM")):
        _tiff(data)


def _too_many(what: str, limit: int) -> ExcessiveStructure:
    return ExcessiveStructure(f"the image header has more than {limit:,} {what}; real images have far fewer")


def _jpeg(data: bytes) -> None:
    position, segments, app1 = 2, 0, 0
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return  # not a marker: Pillow reports the corruption
        marker = data[position + 1]
        if marker == 0xFF:  # fill bytes before a marker
            position += 1
            continue
        if marker == 0xDA or marker == 0xD9:  # start of scan, end of image: the header is over
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            position += 2
            continue
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise _too_many("JPEG header segments", MAX_JPEG_SEGMENTS)
        if marker == 0xE1:
            app1 += 1
            if app1 > MAX_JPEG_APP1:
                raise _too_many("JPEG APP1 (Exif and XMP) segments", MAX_JPEG_APP1)
        (length,) = struct.unpack_from(">H", data, position + 2)
        position += 2 + length


def _png(data: bytes) -> None:
    position, chunks, other = 8, 0, 0
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise _too_many("PNG chunks", MAX_PNG_CHUNKS)
        if kind not in (b"IDAT", b"fdAT"):
            other += 1
            if other > MAX_PNG_OTHER_CHUNKS:
                raise _too_many("PNG metadata chunks", MAX_PNG_OTHER_CHUNKS)
        if kind == b"IEND":
            return
        position += 12 + length


def _gif(data: bytes) -> None:
    if len(data) < 13:
        return
    flags = data[10]
    position = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    sub_blocks = 0
    while position < len(data):
        block = data[position]
        if block != 0x21:  # an image descriptor (0x2C), the trailer or corruption: the extensions are over
            return
        position += 2  # introducer and label
        while position < len(data):
            size = data[position]
            position += 1 + size
            if size == 0:
                break
            sub_blocks += 1
            if sub_blocks > MAX_GIF_SUB_BLOCKS:
                raise _too_many("GIF extension sub-blocks", MAX_GIF_SUB_BLOCKS)


# TIFF field types whose values Pillow turns into Python numbers one by one (bytes and text stay bytes)
_NUMERIC_TIFF_TYPES = frozenset({3, 4, 5, 8, 9, 10, 11, 12, 13, 16, 17, 18})


def _tiff(data: bytes) -> None:
    order = "<" if data.startswith(b"II") else ">"
    if len(data) < 16:
        return
    (version,) = struct.unpack_from(order + "H", data, 2)
    if version == 42:
        (offset,) = struct.unpack_from(order + "I", data, 4)
        count_format, entry_format, entry_size = "H", "HHI", 12
    elif version == 43:  # BigTIFF
        (offset,) = struct.unpack_from(order + "Q", data, 8)
        count_format, entry_format, entry_size = "Q", "HHQ", 20
    else:
        return
    count_size = struct.calcsize(count_format)
    if offset + count_size > len(data):
        return
    (entries,) = struct.unpack_from(order + count_format, data, offset)
    if entries > MAX_TIFF_TAGS:
        raise _too_many("TIFF tags", MAX_TIFF_TAGS)
    position = offset + count_size
    for _ in range(entries):
        if position + entry_size > len(data):
            return
        _tag, kind, values = struct.unpack_from(order + entry_format, data, position)
        if kind in _NUMERIC_TIFF_TYPES and values > MAX_TIFF_VALUES:
            raise _too_many("values in one TIFF tag", MAX_TIFF_VALUES)
        position += entry_size
