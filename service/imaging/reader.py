"""The decoding itself, in the calling thread: a leaf behind :mod:`service.imaging.decode` (the one front door) and
the worker processes of :mod:`service.imaging.isolation`; nothing else imports it.

Two steps so that a big JPEG never costs a full-size decode: :func:`open_image` reads only the header (format and
pixel-count checks, oriented size), then :func:`read_pixels` decodes, at a reduced scale (:meth:`OpenedImage.draft`)
when the caller needs far fewer pixels (on several threads when the JPEG has restart markers:
:mod:`service.imaging.jpeg.strips`; without the scans that scale never reads when it is progressive:
:mod:`service.imaging.jpeg.progressive`), applies the EXIF orientation and converts any mode to RGB.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from pose.errors import PoseError
from service.imaging.budget import decode_bytes
from service.imaging.jpeg.progressive import decode_progressive
from service.imaging.jpeg.strips import decode_in_strips
from service.imaging.structure import ExcessiveStructure, check_structure


class EmptyImage(PoseError):
    """The upload has no bytes."""


class InvalidImage(PoseError):
    """The bytes are not a readable image, or its header or data are corrupt."""


class UnsupportedImage(PoseError):
    """A real image in a format the service does not decode."""


class TooManyPixels(PoseError):
    """More pixels than the service's limit (checked from the header, before decoding)."""


class TooComplex(PoseError):
    """An image whose decoding work its header shows to be out of all proportion to its pixels."""


# A progressive JPEG is decoded scan by scan, each scan a pass over every coefficient block: libjpeg's own
# scripts write 10 or fewer and optimising encoders about 20, while a few kilobytes of empty scans repeated a
# thousand times cost libjpeg tens of seconds of CPU for a tiny image.
MAX_JPEG_SCANS = 100
_SOS = b"\xff\xda"  # start of scan; entropy-coded data stuffs every 0xFF with 0x00, so it cannot hide one
_STRIP_PIXELS = 1 << 20  # high-bit-depth images are narrowed to 8 bits about a megapixel at a time

# Pillow format name -> what the API calls it. MPO is the multi-picture JPEG many cameras write.
SUPPORTED_FORMATS: dict[str, str] = {
    "JPEG": "JPEG",
    "MPO": "JPEG",
    "PNG": "PNG",
    "WEBP": "WebP",
    "BMP": "BMP",
    "TIFF": "TIFF",
    "GIF": "GIF",
}
SUPPORTED_CONTENT_TYPES: frozenset[str] = frozenset(
    {
        "image/jpeg",
        "image/jpg",
        "image/pjpeg",
        "image/png",
        "image/webp",
        "image/bmp",
        "image/x-bmp",
        "image/x-ms-bmp",
        "image/tiff",
        "image/gif",
    }
)
ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Pillow's decoders raise many types on hostile input (OSError, SyntaxError, zlib.error, struct.error,
# ValueError, ...); any of them means the client's bytes are bad, never a server error.
_DECODE_ERRORS = (Exception,)
_WHITE = (255, 255, 255)


@dataclass
class OpenedImage:
    """A parsed header: the lazily decoded Pillow image and its format.

    ``orientation`` is known before decoding only for JPEG (EXIF sits in the header); other
    formats may keep it after the pixel data, so it is read after decoding (None until then).
    """

    image: Image.Image
    format: str
    orientation: int | None
    stored_size: tuple[int, int]  # (width, height) as stored, before orientation and any draft
    data: bytes = b""  # the encoded file
    scale: int = 1  # the JPEG DCT scale chosen by :meth:`draft` (1, 2, 4 or 8)
    scans: int = 1  # passes the decoder makes over the image: the scans of a progressive JPEG, else 1

    @property
    def size(self) -> tuple[int, int]:
        """Full-resolution (width, height) after the EXIF orientation (as stored if not known yet)."""
        return _oriented(self.stored_size, self.orientation or 1)

    def draft(self, min_size: tuple[int, int] | None) -> None:
        """Decode a JPEG at the smallest DCT scale (1/2, 1/4, 1/8) with at least ``min_size`` oriented pixels."""
        image = self.image
        if min_size is None or self.format != "JPEG" or self.orientation is None or self.scale != 1:
            return
        want = min_size if self.orientation < 5 else (min_size[1], min_size[0])
        full_w = image.size[0]
        if full_w >= 2 * want[0] and image.size[1] >= 2 * want[1]:
            result = image.draft("RGB", want)
            if result is not None:
                self.scale = round(full_w / result[1][2])

    @property
    def decode_work(self) -> int:
        """Pixel passes of the decode: full-resolution pixels (a reduced-scale JPEG still entropy-decodes them
        all) times :attr:`scans`."""
        return self.stored_size[0] * self.stored_size[1] * self.scans

    @property
    def decode_bytes(self) -> int:
        """Upper bound of its decoding's memory at the chosen scale (see :func:`.budget.decode_bytes`)."""
        image = self.image
        may_rotate = self.orientation is None or self.orientation != 1
        pixels = decode_bytes(image.mode, image.size, self.format, "transparency" in image.info, may_rotate)
        if self.format == "JPEG" and image.info.get("progressive"):
            # libjpeg holds every DCT coefficient of a progressive file (2 bytes each) at full resolution, at any scale
            return pixels + 2 * len(image.getbands()) * self.stored_size[0] * self.stored_size[1]
        return pixels


def check_header(data: bytes) -> None:
    """TooComplex when the header's repeated structure (:mod:`.structure`) passes a limit; ``data`` may be the
    first bytes of an upload still arriving (every limit is found within the first 64 kB)."""
    try:
        check_structure(data)
    except ExcessiveStructure as exc:
        raise TooComplex(str(exc)) from exc


def open_image(data: bytes, max_pixels: int, content_type: str | None = None) -> OpenedImage:
    """Parse the header of ``data`` (EmptyImage, InvalidImage, UnsupportedImage, TooManyPixels, TooComplex)."""
    if not data:
        raise EmptyImage("the uploaded image is empty (0 bytes)")
    check_header(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(f"image has too many pixels ({exc})") from exc
    except UnidentifiedImageError as exc:
        declared = (content_type or "").split(";")[0].strip().lower()
        if declared.startswith("image/") and declared not in SUPPORTED_CONTENT_TYPES:
            raise UnsupportedImage(_unsupported_message(declared)) from exc
        raise InvalidImage("the upload is not a readable image") from exc
    except _DECODE_ERRORS as exc:
        raise _corrupt("the image header is corrupt", exc) from exc
    if image.format not in SUPPORTED_FORMATS:
        raise UnsupportedImage(_unsupported_message(image.format or "unknown"))
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidImage(f"the image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise TooManyPixels(
            f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
        )
    kind = SUPPORTED_FORMATS[image.format]
    scans = 1
    if kind == "JPEG" and image.info.get("progressive"):
        scans = data.count(_SOS)  # EXIF thumbnails add their own few
        if scans > MAX_JPEG_SCANS:
            raise TooComplex(f"the progressive JPEG has {scans} scans; at most {MAX_JPEG_SCANS} are decoded")
    orientation = _orientation(image) if kind == "JPEG" else None
    return OpenedImage(image, kind, orientation, (width, height), data, scans=max(1, scans))


def read_pixels(opened: OpenedImage, threads: int = 1) -> tuple[Image.Image, tuple[int, int], float]:
    """Decode in this thread: the oriented RGB image, its full oriented size and its reduction (InvalidImage when
    the data is truncated or corrupt). ``opened.draft`` first to decode at a reduced scale."""
    image, scale = opened.image, opened.scale
    try:
        faster = decode_in_strips(opened.data, scale, image.mode, image.size, threads) if threads > 1 else None
        if faster is None and image.info.get("progressive"):
            faster = decode_progressive(opened.data, scale, image.mode, image.size)
        if faster is None:
            image.load()
        else:
            image = faster
        orientation = opened.orientation if opened.orientation is not None else _orientation(image)
        transpose = _TRANSPOSE.get(orientation)
        if transpose is not None:
            image = image.transpose(transpose)
        rgb = to_rgb(image)
    except _DECODE_ERRORS as exc:
        raise _corrupt("the image data is truncated or corrupt", exc) from exc
    return rgb, _oriented(opened.stored_size, orientation), float(scale)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB: alpha composited over white, 16/32-bit scaled to 8 bits."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode.startswith("I;16") or mode in ("I", "F"):
        image = _to_8bit_grey(image)
    elif mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, _WHITE)
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")


def _orientation(image: Image.Image) -> int:
    """EXIF orientation 1..8 (1 when absent or unreadable, as viewers do)."""
    try:
        value = int(image.getexif().get(ORIENTATION_TAG, 1))
    except _DECODE_ERRORS:
        return 1
    return value if 1 <= value <= 8 else 1


def _oriented(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def _to_8bit_grey(image: Image.Image) -> Image.Image:
    """16/32-bit integer or float grey -> 8-bit ``L``, a strip of rows at a time.

    Integers are 16-bit samples (0..65535, clipped) rounded to 8 bits; floats are taken as 0..1 when
    none exceeds 1, else as 0..255. Only one strip is ever widened, so the peak memory is the decoded
    image, the 8-bit result and a megapixel's worth of arithmetic (a whole-image wide copy of a
    7000x7000 16-bit PNG cost over 1 GB).
    """
    width, height = image.size
    rows = max(1, _STRIP_PIXELS // max(width, 1))
    strips = range(0, height, rows)

    def strip(top: int) -> np.ndarray:
        return np.asarray(image.crop((0, top, width, min(height, top + rows))))

    out = np.empty((height, width), np.uint8)
    if image.mode == "F":
        peak = max((float(np.nanmax(strip(top), initial=0.0)) for top in strips), default=0.0)
        scale = np.float32(255.0 if peak <= 1.0 else 1.0)
        for top in strips:
            values = np.nan_to_num(strip(top), nan=0.0, posinf=255.0, neginf=0.0)
            out[top : top + rows] = np.clip(values * scale + np.float32(0.5), 0, 255)
    else:
        for top in strips:
            samples = np.clip(strip(top), 0, 65535).astype(np.uint32)  # 65535 * 255 + 32767 < 2**32
            out[top : top + rows] = (samples * 255 + 32767) // 65535
    return Image.fromarray(out, "L")


# Pillow's own limits on PNG text metadata (PngImagePlugin.MAX_TEXT_CHUNK, MAX_TEXT_MEMORY), in the service's words
_PILLOW_LIMITS = {
    "MAX_TEXT_CHUNK": "a PNG text chunk decompresses to more than 1 MB, the most the service reads of one",
    "MAX_TEXT_MEMORY": "the PNG's text chunks hold more than 64 MB, the most the service reads",
}


def _corrupt(what: str, exc: BaseException) -> PoseError:
    """The error for a decoder's exception: TooComplex for a limit of Pillow's (named in the service's words),
    else InvalidImage quoting the decoder."""
    text = str(exc)
    for name, message in _PILLOW_LIMITS.items():
        if name in text:
            return TooComplex(message)
    return InvalidImage(f"{what} ({text})")


def _unsupported_message(kind: str) -> str:
    accepted = ", ".join(dict.fromkeys(SUPPORTED_FORMATS.values()))
    return f"unsupported image type {kind!r}; send one of {accepted}"
