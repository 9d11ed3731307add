"""Image -> network input as ONE axis-aligned affine map (scale + translate) and its exact inverse.

Coordinates follow :mod:`service.codec`: pixel centres at integers, the centre of the top-left
pixel is (0, 0), so an image of width W spans ``[-0.5, W - 0.5]``. The three ways to fill the
input (``letterbox``, ``stretch``, a person ``bbox`` crop) differ only in the source region and
the scales; each is a map ``x_in = sx * x + tx``, ``y_in = sy * y + ty`` that keypoints invert
in floating point. The pixels are produced by one resize of the visible source region straight
into its place in a preallocated float32 CHW array (values in [0, 1], padding 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from service.errors import ApiError

ResizeMode = Literal["letterbox", "stretch"]
RESIZE_MODES: tuple[str, ...] = ("letterbox", "stretch")
BBOX_GROWTH = 1.25  # a person box is grown by 25% about its centre before cropping
# A person box may be at most this many times the image's longer side, per axis: enough for a person
# mostly outside the frame, while 1e308-sized boxes (absurd keypoints, overflowing maps) are a 422.
MAX_BBOX_FACTOR = 4.0
RESAMPLE = Image.Resampling.BILINEAR  # Pillow widens the kernel when shrinking: antialiased
_EPS = 1e-6


@dataclass(frozen=True)
class Affine:
    """``input = s * image + t`` per axis, in pixel-centre coordinates."""

    sx: float
    sy: float
    tx: float
    ty: float

    def to_input(self, points: np.ndarray) -> np.ndarray:
        """Image points ``(..., 2)`` (x, y) -> network-input points."""
        p = np.asarray(points, dtype=np.float64)
        return p * (self.sx, self.sy) + (self.tx, self.ty)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Network-input points ``(..., 2)`` -> image points: the exact inverse of :meth:`to_input`."""
        p = np.asarray(points, dtype=np.float64)
        return (p - (self.tx, self.ty)) / (self.sx, self.sy)


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``"x,y,w,h"`` -> floats; 422 when malformed, not finite or of zero/negative size."""
    if text is None or not text.strip():
        return None
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ApiError(422, "invalid_bbox", f"bbox must be four finite numbers 'x,y,w,h', got {text!r}")
    if values[2] <= 0 or values[3] <= 0:
        raise ApiError(422, "invalid_bbox", f"bbox width and height must be positive, got {text!r}")
    return values  # type: ignore[return-value]


def plan(
    image_size: tuple[int, int],
    input_size: tuple[int, int],
    resize: ResizeMode = "letterbox",
    bbox: tuple[float, float, float, float] | None = None,
) -> Affine:
    """The image -> input map for an image of ``(width, height)`` and a model input of ``(H, W)``.

    ``letterbox`` keeps the aspect ratio and centres the content (equal padding on both sides);
    ``stretch`` fills the input. With ``bbox = (x, y, w, h)`` (pixel-edge coordinates: ``(0, 0, W, H)``
    is the whole image) the source region is that box grown by 25% about its centre; parts of it
    outside the image become padding. A box that is not finite, does not overlap the image or has a side
    longer than :data:`MAX_BBOX_FACTOR` times the image's longer side is a 422.
    """
    width, height = image_size
    in_h, in_w = input_size
    if resize not in RESIZE_MODES:
        raise ApiError(422, "invalid_resize", f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    if bbox is None:
        cx, cy, rw, rh = width / 2, height / 2, float(width), float(height)
    else:
        x, y, w, h = bbox
        if not all(math.isfinite(v) for v in bbox):
            raise ApiError(422, "invalid_bbox", "bbox values must be finite numbers")
        if w <= 0 or h <= 0:
            raise ApiError(422, "invalid_bbox", "bbox width and height must be positive")
        longest = MAX_BBOX_FACTOR * max(width, height)
        if w > longest or h > longest:
            raise ApiError(
                422,
                "invalid_bbox",
                f"bbox {w:g}x{h:g} is larger than {MAX_BBOX_FACTOR:g} times the {width}x{height} image's longer side",
            )
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise ApiError(422, "invalid_bbox", f"bbox {x:g},{y:g},{w:g},{h:g} lies outside the {width}x{height} image")
        cx, cy, rw, rh = x + w / 2, y + h / 2, w * BBOX_GROWTH, h * BBOX_GROWTH
    sx, sy = in_w / rw, in_h / rh
    if resize == "letterbox":
        sx = sy = min(sx, sy)
    # In pixel-edge coordinates the region centre (cx, cy) lands on the input centre; shift to centres.
    tx = in_w / 2 - sx * cx + 0.5 * sx - 0.5
    ty = in_h / 2 - sy * cy + 0.5 * sy - 0.5
    return Affine(sx, sy, tx, ty)


def draft_size(image_size: tuple[int, int], affine: Affine) -> tuple[int, int]:
    """Smallest (width, height) the decoded image needs so that resizing never upsamples beyond it."""
    return max(1, math.ceil(image_size[0] * affine.sx)), max(1, math.ceil(image_size[1] * affine.sy))


def render(
    image: Image.Image,
    affine: Affine,
    out: np.ndarray,
    reduction: float = 1.0,
    full_size: tuple[int, int] | None = None,
) -> None:
    """Write ``image`` (RGB) through ``affine`` into ``out`` ``(3, H, W)`` float32, which must be zeroed.

    ``affine`` maps the full-resolution image; ``image`` may be that image decoded at ``1/reduction``
    scale (a JPEG draft of the ``full_size`` image), whose pixel edges sit at the full-resolution
    edges divided by ``reduction``.
    Only the input pixels fully covered by the image are written, by one resize of the exactly
    corresponding source box (float coordinates); the rest stays 0.
    """
    _, in_h, in_w = out.shape
    full_w, full_h = full_size or (image.size[0] * reduction, image.size[1] * reduction)
    x0, x1, bx0, bx1 = _span(affine.sx, affine.tx, full_w, in_w, reduction, image.size[0])
    y0, y1, by0, by1 = _span(affine.sy, affine.ty, full_h, in_h, reduction, image.size[1])
    if x1 <= x0 or y1 <= y0:
        return
    patch = image.resize((x1 - x0, y1 - y0), RESAMPLE, box=(bx0, by0, bx1, by1))
    pixels = np.asarray(patch)
    np.divide(pixels.transpose(2, 0, 1), np.float32(255.0), out=out[:, y0:y1, x0:x1], casting="unsafe")


def _span(s: float, t: float, extent: float, size: int, reduction: float, limit: int) -> tuple[int, int, float, float]:
    """Covered output pixels ``[o0, o1)`` on one axis and their source box in the (reduced) image."""
    te = t + 0.5 - 0.5 * s  # the same map in pixel-edge coordinates
    lo, hi = te, s * extent + te  # image edges 0 and extent, in input edge coordinates
    o0 = max(0, math.ceil(lo - _EPS))
    o1 = min(size, math.floor(hi + _EPS))
    b0 = min(max((o0 - te) / s / reduction, 0.0), float(limit))
    b1 = min(max((o1 - te) / s / reduction, 0.0), float(limit))
    return o0, o1, b0, b1
