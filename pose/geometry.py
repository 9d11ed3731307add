"""The one geometry of the project: image pixels -> network input as an affine map, and its exact inverse.

Coordinates follow :mod:`pose.codec`: pixel centres at integers, the centre of the top-left
pixel is (0, 0), so an image of width W spans ``[-0.5, W - 0.5]``. Every crop is an :class:`Affine`
built by one constructor, :meth:`Affine.centred` (a point of the image onto the centre of the output,
scaled, optionally turned and mirrored): the service's ``letterbox``, ``stretch`` and person-box maps
(:func:`plan`, axis-aligned) and the training crops (:meth:`Affine.crop`, rotated and flipped) alike.
Keypoints go back through :meth:`Affine.to_image`. The pixels are written by
:func:`service.imaging.resample.resample_into` (serving) and the training augmentation's warp.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pose.errors import InvalidBox, InvalidResizeMode

ResizeMode = Literal["letterbox", "stretch"]
RESIZE_MODES: tuple[str, ...] = ("letterbox", "stretch")
BBOX_GROWTH = 1.25  # a person box is grown by 25% about its centre before cropping
# A person box may be at most this many times the image's longer side, per axis: enough for a person
# mostly outside the frame, while 1e308-sized boxes (absurd keypoints, overflowing maps) are refused.
MAX_BBOX_FACTOR = 4.0

Box = tuple[float, float, float, float]  # x, y, w, h in pixel-edge coordinates: (0, 0, W, H) is a whole image


@dataclass(frozen=True)
class Affine:
    """``x_in = a * x + b * y + tx``, ``y_in = c * x + d * y + ty``: image pixels -> input pixels."""

    a: float
    b: float
    c: float
    d: float
    tx: float
    ty: float

    # ------------------------------------------------------------------ constructors
    @classmethod
    def centred(
        cls,
        centre: Sequence[float],
        scale: tuple[float, float],
        output_size: tuple[int, int],
        rotation: float = 0.0,
        flip: bool = False,
    ) -> Affine:
        """Image point ``centre`` (x, y) onto the centre of an output of ``(H, W)``, scaled by ``scale``
        (x, y); the content turned by ``rotation`` degrees counter-clockwise as seen on screen; ``flip``
        then mirrors the output horizontally (``x -> W - 1 - x``)."""
        out_h, out_w = output_size
        sx, sy = scale
        if not (sx > 0 and sy > 0 and math.isfinite(sx) and math.isfinite(sy)):
            raise ValueError(f"scales must be positive and finite, got {scale}")
        theta = math.radians(rotation)
        cos, sin = math.cos(theta), math.sin(theta)
        a, b, c, d = cos * sx, sin * sx, -sin * sy, cos * sy
        if flip:
            a, b = -a, -b
        x, y = float(centre[0]), float(centre[1])
        return cls(a, b, c, d, (out_w - 1) / 2.0 - (a * x + b * y), (out_h - 1) / 2.0 - (c * x + d * y))

    @classmethod
    def region(
        cls, centre: Sequence[float], region: tuple[float, float], output_size: tuple[int, int], keep_aspect: bool
    ) -> Affine:
        """The source region of ``(width, height)`` about ``centre`` onto the output: filling it (stretch),
        or fitted inside it with the aspect ratio kept and equal padding on both sides (letterbox)."""
        sx, sy = output_size[1] / region[0], output_size[0] / region[1]
        if keep_aspect:
            sx = sy = min(sx, sy)
        return cls.centred(centre, (sx, sy), output_size)

    @classmethod
    def crop(
        cls,
        centre: Sequence[float],
        size: float,
        output_size: tuple[int, int],
        rotation: float = 0.0,
        flip: bool = False,
    ) -> Affine:
        """The training crop: the square of side ``size`` about ``centre`` fills the output's height."""
        if not size > 0:
            raise ValueError(f"crop size must be positive, got {size}")
        scale = output_size[0] / float(size)
        return cls.centred(centre, (scale, scale), output_size, rotation, flip)

    @classmethod
    def from_matrix(cls, matrix: np.ndarray) -> Affine:
        m = np.asarray(matrix, np.float64)
        if m.shape != (2, 3):
            raise ValueError(f"an affine matrix is 2x3, got {m.shape}")
        return cls(*(float(v) for v in (m[0, 0], m[0, 1], m[1, 0], m[1, 1], m[0, 2], m[1, 2])))

    # ------------------------------------------------------------------ views
    @property
    def matrix(self) -> np.ndarray:
        """The 2x3 float64 matrix ``[[a, b, tx], [c, d, ty]]``."""
        return np.array([[self.a, self.b, self.tx], [self.c, self.d, self.ty]], np.float64)

    @property
    def axis_aligned(self) -> bool:
        """Scale and translate only (every map the service makes)."""
        return self.b == 0.0 and self.c == 0.0

    @property
    def sx(self) -> float:
        return self.a

    @property
    def sy(self) -> float:
        return self.d

    # ------------------------------------------------------------------ maps
    def inverse(self) -> Affine:
        """The map from input pixels back to image pixels."""
        det = self.a * self.d - self.b * self.c
        if det == 0.0 or not math.isfinite(det):
            raise ValueError("the map is not invertible")
        a, b, c, d = self.d / det, -self.b / det, -self.c / det, self.a / det
        return Affine(a, b, c, d, -(a * self.tx + b * self.ty), -(c * self.tx + d * self.ty))

    def to_input(self, points: np.ndarray) -> np.ndarray:
        """Image points ``(..., 2)`` (x, y) -> input points, float64."""
        p = np.asarray(points, dtype=np.float64)
        if self.axis_aligned:
            return p * (self.a, self.d) + (self.tx, self.ty)
        return p @ np.array([[self.a, self.c], [self.b, self.d]]) + (self.tx, self.ty)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Input points ``(..., 2)`` -> image points: the inverse of :meth:`to_input`, float64.

        Axis-aligned maps invert per axis, ``(p - t) / s``, with no rounding beyond that division.
        """
        p = np.asarray(points, dtype=np.float64)
        if self.axis_aligned:
            return (p - (self.tx, self.ty)) / (self.a, self.d)
        return self.inverse().to_input(p)


# ---------------------------------------------------------------------- the service's maps
def check_box(values: Sequence[float]) -> Box:
    """A person box as four finite numbers with a positive width and height (else InvalidBox)."""
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InvalidBox(f"bbox must be four finite numbers 'x,y,w,h', got {','.join(map(str, values))!r}")
    x, y, w, h = (float(v) for v in values)
    if w <= 0 or h <= 0:
        raise InvalidBox(f"bbox width and height must be positive, got {w:g}x{h:g}")
    return x, y, w, h


def parse_bbox(text: str | None) -> Box | None:
    """``"x,y,w,h"`` -> a checked box (:func:`check_box`); None for no box."""
    if text is None or not text.strip():
        return None
    try:
        values = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise InvalidBox(f"bbox must be four finite numbers 'x,y,w,h', got {text!r}") from None
    return check_box(values)


def plan(
    image_size: tuple[int, int],
    input_size: tuple[int, int],
    resize: ResizeMode = "letterbox",
    bbox: Sequence[float] | None = None,
) -> Affine:
    """The service's image -> input map for an image of ``(width, height)`` and a model input of ``(H, W)``.

    ``letterbox`` keeps the aspect ratio and centres the content (equal padding on both sides);
    ``stretch`` fills the input. With ``bbox = (x, y, w, h)`` (pixel-edge coordinates: ``(0, 0, W, H)``
    is the whole image) the source region is that box grown by :data:`BBOX_GROWTH` about its centre;
    parts of it outside the image become padding. A box that is not finite, does not overlap the image or
    has a side longer than :data:`MAX_BBOX_FACTOR` times the image's longer side is an :class:`InvalidBox`.
    """
    width, height = image_size
    if resize not in RESIZE_MODES:
        raise InvalidResizeMode(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    if bbox is None:
        x, y, w, h, growth = 0.0, 0.0, float(width), float(height), 1.0
    else:
        x, y, w, h = check_box(bbox)
        longest = MAX_BBOX_FACTOR * max(width, height)
        if w > longest or h > longest:
            raise InvalidBox(
                f"bbox {w:g}x{h:g} is larger than {MAX_BBOX_FACTOR:g} times the {width}x{height} image's longer side",
            )
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise InvalidBox(f"bbox {x:g},{y:g},{w:g},{h:g} lies outside the {width}x{height} image")
        growth = BBOX_GROWTH
    centre = (x + w / 2 - 0.5, y + h / 2 - 0.5)  # pixel-edge box -> its centre in pixel-centre coordinates
    return Affine.region(centre, (w * growth, h * growth), input_size, keep_aspect=resize == "letterbox")


def draft_size(image_size: tuple[int, int], affine: Affine) -> tuple[int, int]:
    """Smallest (width, height) the decoded image needs so that resizing never upsamples beyond it."""
    return max(1, math.ceil(image_size[0] * abs(affine.sx))), max(1, math.ceil(image_size[1] * abs(affine.sy)))
