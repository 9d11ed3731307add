"""Test images: encoded bytes of synthetic pictures, blobs at known positions, EXIF orientations."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

# EXIF orientation o -> how to turn the upright (displayed) image into the stored one.
# The viewer applies the inverse: 6 = stored rotated 90 degrees counter-clockwise, shown clockwise.
STORE_FOR_ORIENTATION = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def gray_image(width: int, height: int, value: int = 128) -> Image.Image:
    return Image.new("RGB", (width, height), (value, value, value))


def blob_image(width: int, height: int, centre: tuple[float, float], sigma: float) -> Image.Image:
    """Black RGB image with a red-channel Gaussian blob (peak 255) centred at ``centre`` (pixel-centre coords)."""
    xs = np.arange(width)[None, :]
    ys = np.arange(height)[:, None]
    blob = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 0] = np.round(255 * blob).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def with_orientation(upright: Image.Image, orientation: int, quality: int = 95, **params: object) -> bytes:
    """A JPEG that displays as ``upright`` when its EXIF orientation ``orientation`` is applied."""
    transpose = STORE_FOR_ORIENTATION[orientation]
    stored = upright if transpose is None else upright.transpose(transpose)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", quality=quality, exif=exif.tobytes(), **params)


def padded_png(side: int, size: int) -> bytes:
    """A 16-bit grey PNG of ``side`` x ``side`` grown to ``size`` bytes by a private ancillary chunk."""
    out = io.BytesIO()
    y, x = np.mgrid[0:side, 0:side]
    Image.fromarray(((x * 37 + y * 11) % 65536).astype(np.uint16)).save(out, "PNG")
    png = out.getvalue()
    filler = np.random.default_rng(0).bytes(size - len(png) - 12)
    chunk = struct.pack(">I", len(filler)) + b"prVt" + filler
    chunk += struct.pack(">I", zlib.crc32(chunk[4:]) & 0xFFFFFFFF)
    return png[:-12] + chunk + png[-12:]  # before IEND
