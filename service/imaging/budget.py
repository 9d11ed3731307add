"""A process-wide budget of decoded-image memory, and the header estimate each decode is admitted with.

``POSE_MAX_PIXELS`` bounds pixels, not bytes: the same 50 megapixels are 50 MB as 8-bit grey and 800 MB
once a lossless WebP's RGBA buffers and their RGB conversion exist side by side. Every decode therefore
reserves :func:`decode_bytes` (an upper bound of its peak, from the header alone) from one shared
:class:`DecodeBudget` before it starts and returns it once its pixels are dropped: the decodes alive at any
moment never need more than the budget together, whatever mix of images arrives. A decode that cannot get
its share within the wait is refused as busy (the client retries); one that needs more than the whole
budget is refused at once.
"""

from __future__ import annotations

import math
import threading

from pose.errors import PoseError

MB = 1_000_000

# Bytes per pixel of Pillow's own storage of a decoded mode (RGB is padded to 4 bytes); 4 for anything else.
_STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_RGBA_MODES = frozenset({"RGBA"})
_OTHER_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBa"})
_HIGH_BIT_DEPTH = ("I;16", "I", "F")
_RGB = 4  # Pillow stores RGB and RGBA in 4 bytes per pixel
_STRIP = 8 * MB  # the high-bit-depth conversion's working strip (service.imaging.decode)
_WEBP_BUFFERS = 9  # libwebp's RGBA canvas and the copy Pillow reads it through, alive beside the image
_SLACK = 16 * MB  # decoder buffers and allocator slack, per image (measured: tests/test_decode_budget.py)
# Per row of pixels and image alive, whatever its width: Pillow keeps a pointer per row in every image (measured on
# 1 x 50,000,000 PNGs: 14 bytes a row beyond the pixels for 8-bit grey, 21 for 16-bit, with three and four images
# alive); negligible for photos (3,000 rows: 0.1 MB), it is what a tall thin image costs.
_ROW = 8
_PNG_ROWS = 2  # libpng keeps the row being unfiltered and the one before it: on a wide image, megabytes each


class DecodeTooLarge(PoseError):
    """An image whose decoding alone needs more memory than the service's whole decode budget."""


class DecodeBusy(PoseError):
    """The decode budget stayed taken by other requests for longer than the wait: try again shortly."""


def decode_bytes(
    mode: str, size: tuple[int, int], image_format: str, transparency: bool = False, may_rotate: bool = True
) -> int:
    """Upper bound of the peak bytes of decoding ``size`` pixels stored as ``mode`` and turning them into RGB.

    Counted, as :func:`service.imaging.decode.decode_rgb` and ``to_rgb`` hold them at once: Pillow's decoded
    image; a transposed copy of it when an EXIF orientation may apply (``may_rotate``: unknown before
    decoding except for JPEG); for WebP the decoder's own buffers; then the conversion to RGB: nothing
    for RGB, the white background an alpha image is composited on (and an RGBA intermediate for the other
    alpha modes and transparent palettes), the 8-bit copy and a working strip for high-bit-depth modes, and
    the RGB result for every mode that is not RGB already; per row, Pillow's and the decoder's bookkeeping (and
    for PNG the decoder's two rows); and a fixed slack.
    """
    stored = _STORED_BYTES.get(mode, 4)
    images = 2 if may_rotate else 1
    per_pixel = stored * images
    extra = _SLACK
    if image_format == "WebP":
        per_pixel += _WEBP_BUFFERS
    if mode in _RGBA_MODES:
        per_pixel += _RGB
        images += 1
    elif mode in _OTHER_ALPHA_MODES or (mode == "P" and transparency):
        per_pixel += 2 * _RGB
        images += 2
    elif mode.startswith(_HIGH_BIT_DEPTH):
        per_pixel += 1 + _RGB
        images += 2
        extra += _STRIP
    elif mode != "RGB":
        per_pixel += _RGB
        images += 1
    width, height = max(0, size[0]), max(0, size[1])
    extra += _ROW * images * height
    if image_format == "PNG":
        extra += _PNG_ROWS * stored * width
    return width * height * per_pixel + extra


def held_bytes(size: tuple[int, int]) -> int:
    """What a decoded RGB image of ``size`` keeps once its decode is over (Pillow's 4 bytes a pixel, a pointer a
    row): the share its reservation shrinks to (:meth:`Reservation.shrink`)."""
    width, height = max(0, size[0]), max(0, size[1])
    return width * height * _RGB + _ROW * height


class DecodeBudget:
    """Bytes of decoded pixels the whole process may hold at once, shared by every request's decodes."""

    def __init__(self, limit_bytes: int, wait_s: float) -> None:
        if limit_bytes <= 0:
            raise ValueError(f"a decode budget needs a positive size, not {limit_bytes}")
        self.limit = int(limit_bytes)
        self.wait_s = float(wait_s)
        self._used = 0
        self._freed = threading.Condition()

    @property
    def used(self) -> int:
        """Bytes reserved right now."""
        return self._used

    def acquire(self, nbytes: int) -> Reservation:
        """Take ``nbytes`` of the budget until the reservation is released (DecodeTooLarge, DecodeBusy).

        Blocks the calling thread for at most the budget's wait.
        """
        nbytes = max(0, int(nbytes))
        if nbytes > self.limit:
            raise DecodeTooLarge(
                f"decoding this image needs about {math.ceil(nbytes / MB)} MB, more than the "
                f"{self.limit // MB} MB the service decodes at once; send it smaller or in fewer bits per pixel"
            )
        with self._freed:
            if not self._freed.wait_for(lambda: self._used + nbytes <= self.limit, timeout=self.wait_s):
                raise DecodeBusy("the service is decoding other large images; try again shortly")
            self._used += nbytes
        return Reservation(self, nbytes)

    def _give_back(self, nbytes: int) -> None:
        with self._freed:
            self._used -= nbytes
            self._freed.notify_all()


class Reservation:
    """A share of a :class:`DecodeBudget`, held until :meth:`release` (or the end of a ``with`` block)."""

    def __init__(self, budget: DecodeBudget, nbytes: int) -> None:
        self.nbytes = nbytes
        self._budget: DecodeBudget | None = budget

    def shrink(self, nbytes: int) -> None:
        """Keep only ``nbytes`` (when fewer than held): a decode's peak is over, its result stays. A render that
        decodes the upload again at a larger scale must not wait on the first decode's peak share."""
        budget, nbytes = self._budget, max(0, int(nbytes))
        if budget is not None and nbytes < self.nbytes:
            budget._give_back(self.nbytes - nbytes)
            self.nbytes = nbytes

    def release(self) -> None:
        """Give the bytes back (once; later calls do nothing)."""
        budget, self._budget = self._budget, None
        if budget is not None:
            budget._give_back(self.nbytes)

    __del__ = release  # one dropped unreleased (a request abandoned mid-way) still gives its bytes back

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
