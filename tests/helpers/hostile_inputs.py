"""Hostile and broken uploads, generated in code (no binary blobs), each with the answer the service documents.

Used by ``tests/test_hostile.py``, the hypothesis fuzz test (as seeds) and ``scripts/reliability_report.py``.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

FileSpec = tuple[str, tuple[str, bytes, str]]  # (field name, (filename, content, content type))


# --------------------------------------------------------------------------- image builders
def _pattern(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB gradient with some noise: a real image, not a flat colour."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / max(width - 1, 1), yy * 255 / max(height - 1, 1), (xx + yy) % 256], axis=-1)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def rgb_image(width: int = 96, height: int = 64, seed: int = 0) -> Image.Image:
    return Image.fromarray(_pattern(width, height, seed), "RGB")


def jpeg(width: int = 96, height: int = 64, seed: int = 0) -> bytes:
    return encode(rgb_image(width, height, seed), "JPEG", quality=90)


def png(width: int = 96, height: int = 64, seed: int = 0) -> bytes:
    return encode(rgb_image(width, height, seed), "PNG")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_raw(width: int, height: int, bit_depth: int, colour_type: int, idat: bytes) -> bytes:
    """A PNG assembled chunk by chunk: the header can claim anything the data does not back."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes claiming ``width`` x ``height`` RGB pixels (a decompression bomb's header)."""
    return png_raw(width, height, 8, 2, zlib.compress(b"\x00" * 4096, 9))


def png_16bit_rgb(width: int = 40, height: int = 30) -> bytes:
    """A valid 16-bit-per-channel RGB PNG (Pillow cannot write one, so it is built by hand)."""
    pixels = (_pattern(width, height).astype(np.uint16) * 257).astype(">u2")
    rows = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))
    return png_raw(width, height, 16, 2, zlib.compress(rows))


def png_16bit_gray(width: int = 40, height: int = 30) -> bytes:
    values = (_pattern(width, height)[..., 0].astype(np.uint16) * 257).astype(np.uint16)
    return encode(Image.fromarray(values), "PNG")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG whose SOF0 header is patched to claim ``width`` x ``height``."""
    data = bytearray(jpeg(16, 16))
    sof = data.find(b"\xff\xc0")
    if sof < 0:
        raise ValueError("baseline JPEG without SOF0 marker")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def animated_gif(frames: int = 3) -> bytes:
    images = [rgb_image(48, 32, seed).convert("P") for seed in range(frames)]
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)


def cmyk_jpeg() -> bytes:
    return encode(rgb_image(64, 48).convert("CMYK"), "JPEG", quality=90)


def palette_png_with_transparency() -> bytes:
    image = rgb_image(64, 48).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(image, "PNG", transparency=0)


def scan_bomb(repeats: int, width: int = 1200, height: int = 900) -> bytes:
    """A flat progressive JPEG whose last scan is repeated ``repeats`` times before the end marker: a few bytes
    per scan, each a full pass of libjpeg over the image."""
    data = encode(Image.new("RGB", (width, height), (120, 140, 160)), "JPEG", progressive=True, quality=90)
    last_scan = data[data.rindex(b"\xff\xda") : -2]
    return data[:-2] + last_scan * repeats + b"\xff\xd9"


# --------------------------------------------------------------------------- header bombs: a few bytes of header
# structure each, repeated until parsing the header alone costs seconds and hundreds of megabytes in Pillow
def jpeg_with_segments(count: int, marker: bytes = b"\xff\xe1", payload: bytes = b"Exif\x00\x00") -> bytes:
    """A small valid JPEG with ``count`` extra header segments (APP1 "Exif" by default; ``b"\xff\xfe", b""`` for
    empty comments) between its start marker and the rest of its header."""
    data = jpeg(32, 24)
    segment = marker + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + segment * count + data[2:]


def png_with_chunks(count: int, kind: bytes = b"zzZz") -> bytes:
    """A small valid PNG with ``count`` empty ancillary chunks of an unknown ``kind`` after its IHDR."""
    data = png(32, 24)
    ihdr_end = 8 + 12 + 13
    return data[:ihdr_end] + _png_chunk(kind, b"") * count + data[ihdr_end:]


def gif_with_comment(sub_blocks: int) -> bytes:
    """A small valid GIF whose comment extension is ``sub_blocks`` one-byte sub-blocks long."""
    data = encode(rgb_image(32, 24).convert("P"), "GIF")
    start = data.index(b"\x2c")  # the first image descriptor (the palette is a multiple of 3 bytes before it)
    comment = b"\x21\xfe" + b"\x01c" * sub_blocks + b"\x00"
    return data[:start] + comment + data[start:]


def tiff_with_strips(strips: int) -> bytes:
    """A little-endian TIFF of 1 x ``strips`` grey pixels, one row per strip: ``strips`` StripOffsets and
    StripByteCounts (LONG values) that Pillow reads into tuples when it opens the file."""
    entries = []
    values = b""
    offset_of_values = 8 + 2 + 9 * 12 + 4
    pixel_data = offset_of_values + 8 * strips
    offsets = struct.pack(f"<{strips}I", *range(pixel_data, pixel_data + strips))
    counts = struct.pack(f"<{strips}I", *([1] * strips))

    def entry(tag: int, kind: int, count: int, value: int) -> bytes:
        return struct.pack("<HHII", tag, kind, count, value)

    entries = [
        entry(256, 4, 1, 1),  # ImageWidth
        entry(257, 4, 1, strips),  # ImageLength
        entry(258, 3, 1, 8),  # BitsPerSample
        entry(259, 3, 1, 1),  # Compression: none
        entry(262, 3, 1, 1),  # Photometric: black is zero
        entry(273, 4, strips, offset_of_values),  # StripOffsets
        entry(277, 3, 1, 1),  # SamplesPerPixel
        entry(278, 4, 1, 1),  # RowsPerStrip
        entry(279, 4, strips, offset_of_values + 4 * strips),  # StripByteCounts
    ]
    values = offsets + counts
    ifd = struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + values + bytes(range(256)) * (strips // 256 + 1)


def truncated(data: bytes, fraction: float = 0.5) -> bytes:
    return data[: max(1, int(len(data) * fraction))]


def random_bytes(size: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


# --------------------------------------------------------------------------- the corpus
@dataclass(frozen=True)
class HostileCase:
    """One request and the answer the service documents for it."""

    name: str
    status: int
    codes: tuple[str, ...] = ()  # acceptable error codes; empty: any (or a success)
    path: str = "/predict"
    content: bytes | None = None  # raw body
    content_type: str | None = None
    files: Sequence[FileSpec] = field(default_factory=tuple)
    params: dict[str, str] = field(default_factory=dict)

    def request_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client.post``."""
        kwargs: dict[str, Any] = {"params": self.params}
        if self.files:
            kwargs["files"] = list(self.files)
        elif self.content is not None:
            kwargs["content"] = self.content
            if self.content_type:
                kwargs["headers"] = {"content-type": self.content_type}
        elif self.content_type:
            kwargs["headers"] = {"content-type": self.content_type}
        return kwargs


def _raw(name: str, status: int, codes: tuple[str, ...], content: bytes, ctype: str, **kw: Any) -> HostileCase:
    return HostileCase(name, status, codes, content=content, content_type=ctype, **kw)


def _file(name: str, status: int, codes: tuple[str, ...], content: bytes, ctype: str, **kw: Any) -> HostileCase:
    return HostileCase(name, status, codes, files=(("file", ("upload", content, ctype)),), **kw)


BAD_IMAGE = ("invalid_image",)
TOO_LARGE = ("too_many_pixels",)
BAD_QUERY = ("invalid_request",)
TOO_COMPLEX = ("image_too_complex",)


def corpus(max_files: int = 16) -> list[HostileCase]:
    """Every hostile input of the reliability issue (the slow over-limit upload is a test of its own)."""
    good = jpeg(96, 64)
    tiny = png(1, 1)
    return [
        _raw("empty body", 400, ("empty_body",), b"", "image/jpeg"),
        HostileCase("no body, no content type", 422, ("missing_file",)),
        _file("empty file field", 400, ("empty_image",), b"", "image/jpeg"),
        _raw("random bytes", 400, BAD_IMAGE, random_bytes(4096), "image/jpeg"),
        _file("random bytes as a file", 400, BAD_IMAGE, random_bytes(2048, seed=1), "application/octet-stream"),
        _raw("text with an image content type", 400, BAD_IMAGE, b"this is not a picture\n" * 20, "image/png"),
        _raw("text/plain body", 415, ("unsupported_media_type",), b"hello", "text/plain"),
        _raw("truncated JPEG", 400, BAD_IMAGE, truncated(jpeg(200, 150)), "image/jpeg"),
        _raw("truncated PNG", 400, BAD_IMAGE, truncated(png(200, 150)), "image/png"),
        _raw("JPEG header only", 400, BAD_IMAGE, good[:20], "image/jpeg"),
        _raw("PNG declaring 100000x100000", 413, TOO_LARGE, png_declaring(100_000, 100_000), "image/png"),
        _raw("PNG declaring 0x0", 400, BAD_IMAGE, png_declaring(0, 0), "image/png"),
        _raw("JPEG declaring 65000x65000", 413, TOO_LARGE, jpeg_declaring(65_000, 65_000), "image/jpeg"),
        _raw("JPEG of 100,000 Exif segments", 422, TOO_COMPLEX, jpeg_with_segments(100_000), "image/jpeg"),
        _raw(
            "JPEG of 250,000 empty comments",
            422,
            TOO_COMPLEX,
            jpeg_with_segments(250_000, b"\xff\xfe", b""),
            "image/jpeg",
        ),
        _raw("PNG of 100,000 unknown chunks", 422, TOO_COMPLEX, png_with_chunks(100_000), "image/png"),
        _raw("GIF comment of 500,000 sub-blocks", 422, TOO_COMPLEX, gif_with_comment(500_000), "image/gif"),
        _raw("TIFF of 150,000 strips", 422, TOO_COMPLEX, tiff_with_strips(150_000), "image/tiff"),
        _raw("animated GIF (first frame)", 200, (), animated_gif(), "image/gif"),
        _raw("16-bit grey PNG", 200, (), png_16bit_gray(), "image/png"),
        _raw("16-bit RGB PNG", 200, (), png_16bit_rgb(), "image/png"),
        _raw("CMYK JPEG", 200, (), cmyk_jpeg(), "image/jpeg"),
        _raw("palette PNG with transparency", 200, (), palette_png_with_transparency(), "image/png"),
        _raw("1x1 image", 200, (), tiny, "image/png"),
        HostileCase(
            "multipart with 1000 files",
            413,
            ("too_many_files",),
            path="/predict/batch",
            files=tuple(("files", (f"f{i}.png", tiny, "image/png")) for i in range(1000)),
        ),
        HostileCase(
            f"batch of {max_files + 1} files",
            413,
            ("too_many_files",),
            path="/predict/batch",
            files=tuple(("files", (f"f{i}.png", tiny, "image/png")) for i in range(max_files + 1)),
        ),
        HostileCase("wrong field name", 422, ("missing_file",), files=(("image", ("a.jpg", good, "image/jpeg")),)),
        HostileCase(
            "wrong field name in batch",
            422,
            ("missing_file",),
            path="/predict/batch",
            files=(("file", ("a.jpg", good, "image/jpeg")),),
        ),
        HostileCase("path-like file name", 200, files=(("file", ("../../../etc/passwd", good, "image/jpeg")),)),
        _raw("resize=sideways", 422, BAD_QUERY, good, "image/jpeg", params={"resize": "sideways"}),
        _raw("refine=magic", 422, BAD_QUERY, good, "image/jpeg", params={"refine": "magic"}),
        _raw("flip=perhaps", 422, BAD_QUERY, good, "image/jpeg", params={"flip": "perhaps"}),
        _raw("bbox with three numbers", 422, ("invalid_bbox",), good, "image/jpeg", params={"bbox": "1,2,3"}),
        _raw("bbox not numbers", 422, ("invalid_bbox",), good, "image/jpeg", params={"bbox": "a,b,c,d"}),
        _raw("bbox of zero size", 422, ("invalid_bbox",), good, "image/jpeg", params={"bbox": "10,10,0,0"}),
        _raw("bbox NaN", 422, ("invalid_bbox",), good, "image/jpeg", params={"bbox": "nan,0,10,10"}),
        _raw("bbox outside", 422, ("invalid_bbox",), good, "image/jpeg", params={"bbox": "5000,5000,10,10"}),
        _raw("bbox infinite", 422, ("invalid_bbox",), good, "image/jpeg", params={"bbox": "0,0,1e309,10"}),
    ]
