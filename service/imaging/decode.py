"""Uploaded bytes -> EXIF-oriented RGB Pillow image, with the service's limits: the one way into decoding.

Two steps so that a big JPEG never costs a full-size decode: :func:`open_image` reads only the header (format and
pixel-count checks, oriented size), then :func:`decode_rgb` decodes, at a reduced scale when the caller needs far
fewer pixels, applies the EXIF orientation and converts any mode to RGB. Each decode first reserves its memory,
estimated from the header, from the process-wide :mod:`~service.imaging.budget`, and this module alone decides
where it runs: in the calling thread (:mod:`~service.imaging.reader`, with the private JPEG fast paths behind it),
or, when costly, in a worker process that is killed at its timeout (:mod:`~service.imaging.isolation`).
:class:`Decoder` holds one service's choices (pixel limit, threads, budget, workers) so callers pass one object.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from service.imaging.budget import MB, DecodeBudget, DecodeBusy, DecodeTooLarge, Reservation, held_bytes
from service.imaging.isolation import (
    TRANSFER_BYTES,
    TRANSFER_BYTES_PER_PIXEL,
    DecodeStopped,
    DecodeWorkers,
    WorkerLost,
)
from service.imaging.jpeg.strips import decode_threads
from service.imaging.reader import (
    SUPPORTED_CONTENT_TYPES,
    SUPPORTED_FORMATS,
    EmptyImage,
    InvalidImage,
    OpenedImage,
    TooComplex,
    TooManyPixels,
    UnsupportedImage,
    check_header,
    open_image,
    read_pixels,
    to_rgb,
)
from service.settings import Settings

__all__ = [
    "SUPPORTED_CONTENT_TYPES",
    "SUPPORTED_FORMATS",
    "DecodeBusy",
    "DecodeStopped",
    "DecodeTooLarge",
    "DecodedImage",
    "Decoder",
    "EmptyImage",
    "InvalidImage",
    "OpenedImage",
    "TooComplex",
    "TooManyPixels",
    "UnsupportedImage",
    "WorkerLost",
    "HEADER_PREFIX_BYTES",
    "check_header",
    "decode_rgb",
    "open_image",
    "start_workers",
    "to_rgb",
]


HEADER_PREFIX_BYTES = 65536  # an upload's first bytes, enough for :func:`check_header` to find any excess in


@dataclass
class DecodedImage:
    """An EXIF-oriented RGB image, possibly decoded at ``1/reduction`` of its full size.

    ``size`` is the full-resolution oriented (width, height): the frame keypoints are reported in.
    Full-resolution pixel edges sit at ``reduction`` times the edges of ``image``.
    """

    image: Image.Image
    size: tuple[int, int]
    reduction: float = 1.0
    reservation: Reservation | None = None  # its share of the decode budget, held until :meth:`release`

    def release(self) -> None:
        """Give its share of the decode budget back: call once its pixels are no longer needed."""
        if self.reservation is not None:
            self.reservation.release()


def decode_rgb(
    opened: OpenedImage,
    min_size: tuple[int, int] | None = None,
    threads: int = 1,
    budget: DecodeBudget | None = None,
    workers: DecodeWorkers | None = None,
) -> DecodedImage:
    """Decode the pixels, oriented and in RGB; InvalidImage when truncated or corrupt.

    With ``budget`` the decode first takes its :attr:`OpenedImage.decode_bytes` from it (DecodeTooLarge,
    DecodeBusy), and the result holds what it keeps of them (:func:`.budget.held_bytes`) until
    :meth:`DecodedImage.release`. With ``workers`` an image
    whose :attr:`OpenedImage.decode_work` exceeds ``workers.min_work`` is decoded in a worker process,
    stopped at its timeout (DecodeStopped; WorkerLost when the worker itself failed); any other decodes in this
    thread.

    With ``min_size`` (oriented width, height) a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8)
    that still has at least that many pixels; on up to ``threads`` threads when it was written with restart
    markers, and without the AC scans 1/8 scale does not read when it is progressive (the same pixels either way).
    """
    opened.draft(min_size)
    image = opened.image
    isolated = workers is not None and opened.decode_work > workers.min_work
    nbytes = opened.decode_bytes
    if isolated:
        nbytes += TRANSFER_BYTES_PER_PIXEL * image.size[0] * image.size[1] + TRANSFER_BYTES
    reservation = budget.acquire(nbytes) if budget is not None else None
    try:
        if isolated:
            width, height = opened.stored_size
            rgb, size, reduction = workers.decode(opened.data, None, width * height, min_size, threads)
        else:
            rgb, size, reduction = read_pixels(opened, threads)
    except BaseException:
        if reservation is not None:
            reservation.release()
        raise
    if reservation is not None:
        reservation.shrink(held_bytes(rgb.size))  # the decoder's buffers are gone; the RGB image stays
    return DecodedImage(rgb, size, reduction, reservation)


@dataclass(frozen=True)
class Decoder:
    """One service's decoding: its pixel limit, strip threads, memory budget and (optional) worker processes."""

    max_pixels: int
    threads: int = 1  # threads for one large JPEG written with restart markers
    budget: DecodeBudget | None = None  # decoded-pixel memory shared by every decode
    workers: DecodeWorkers | None = None  # processes for the costly decodes, stopped at their timeout

    @classmethod
    def from_settings(cls, settings: Settings, workers: DecodeWorkers | None = None) -> Decoder:
        """The decoder ``settings`` describe (``POSE_MAX_PIXELS``, ``POSE_DECODE_THREADS``, ``POSE_DECODE_MEMORY_MB``);
        ``workers`` from :func:`start_workers`, if any."""
        budget = DecodeBudget(settings.decode_memory_mb * MB, wait_s=settings.request_timeout_s)
        return cls(settings.max_pixels, decode_threads(settings.decode_threads), budget, workers)

    def open(self, data: bytes, content_type: str | None = None) -> OpenedImage:
        """The header of ``data`` under this decoder's pixel limit (see :func:`open_image`)."""
        return open_image(data, self.max_pixels, content_type)

    def decode(self, opened: OpenedImage, min_size: tuple[int, int] | None = None) -> DecodedImage:
        """The pixels of ``opened`` (see :func:`decode_rgb`); :meth:`DecodedImage.release` them when done."""
        return decode_rgb(opened, min_size, self.threads, self.budget, self.workers)

    def read(
        self, data: bytes, content_type: str | None = None, min_size: tuple[int, int] | None = None
    ) -> DecodedImage:
        """:meth:`open` then :meth:`decode`."""
        return self.decode(self.open(data, content_type), min_size)


def start_workers(settings: Settings) -> DecodeWorkers | None:
    """The worker processes of ``settings`` (None when ``POSE_DECODE_PROCESSES`` is 0); close them when done."""
    if settings.decode_processes == 0:
        return None
    return DecodeWorkers(settings.decode_processes, settings.decode_timeout_s, wait_s=settings.request_timeout_s)
