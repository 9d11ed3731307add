"""Image -> network input as ONE axis-aligned affine map (scale + translate) and its exact inverse.

Coordinates follow :mod:`service.core.codec`: pixel centres at integers, the centre of the top-left
pixel is (0, 0), so an image of width W spans ``[-0.5, W - 0.5]``. The three ways to fill the
input (``letterbox``, ``stretch``, a person ``bbox`` crop) differ only in the source region and
the scales; each is a map ``x_in = sx * x + tx``, ``y_in = sy * y + ty`` that keypoints invert
in floating point. The pixels themselves are written by :func:`service.imaging.resample.resample_into`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from service.core.errors import InvalidBox, InvalidResizeMode

ResizeMode = Literal["letterbox", "stretch"]
RESIZE_MODES: tuple[str, ...] = ("letterbox", "stretch")
BBOX_GROWTH = 1.25  # a person box is grown by 25% about its centre before cropping
# A person box may be at most this many times the image's longer side, per axis: enough for a person
# mostly outside the frame, while 1e308-sized boxes (absurd keypoints, overflowing maps) are refused.
MAX_BBOX_FACTOR = 4.0


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
    """``"x,y,w,h"`` -> floats; InvalidBox when malformed, not finite or of zero/negative size."""
    if text is None or not text.strip():
        return None
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InvalidBox(f"bbox must be four finite numbers 'x,y,w,h', got {text!r}")
    if values[2] <= 0 or values[3] <= 0:
        raise InvalidBox(f"bbox width and height must be positive, got {text!r}")
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
    longer than :data:`MAX_BBOX_FACTOR` times the image's longer side is an :class:`InvalidBox`.
    """
    width, height = image_size
    in_h, in_w = input_size
    if resize not in RESIZE_MODES:
        raise InvalidResizeMode(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    if bbox is None:
        cx, cy, rw, rh = width / 2, height / 2, float(width), float(height)
    else:
        x, y, w, h = bbox
        if not all(math.isfinite(v) for v in bbox):
            raise InvalidBox("bbox values must be finite numbers")
        if w <= 0 or h <= 0:
            raise InvalidBox("bbox width and height must be positive")
        longest = MAX_BBOX_FACTOR * max(width, height)
        if w > longest or h > longest:
            raise InvalidBox(
                f"bbox {w:g}x{h:g} is larger than {MAX_BBOX_FACTOR:g} times the {width}x{height} image's longer side",
            )
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise InvalidBox(f"bbox {x:g},{y:g},{w:g},{h:g} lies outside the {width}x{height} image")
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
