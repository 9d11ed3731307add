"""Pixels through an input map: one resize of the visible source region into the network input.

The map is a :class:`pose.geometry.Affine` (image -> input, pixel centres at integers);
the pixels go straight into their place in a preallocated float32 CHW array (values in [0, 1],
padding 0), with no intermediate full-size copy.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from pose.geometry import Affine

RESAMPLE = Image.Resampling.BILINEAR  # Pillow widens the kernel when shrinking: antialiased
_EPS = 1e-6
# Pillow's kernel grows with the shrink factor, and its coefficient tables with kernel x output size: a 1 x
# 50,000,000 image shrunk to 4,096 rows needed gigabytes (a MemoryError). Past MAX_SHRINK on an axis the image is
# first reduced by a whole factor (box averaging, Pillow's ``reducing_gap``), leaving at most REDUCING_GAP to
# resample; photos (at most about 30x to the network input) never take that path.
MAX_SHRINK = 64.0
REDUCING_GAP = 8.0


def resize(
    image: Image.Image,
    size: tuple[int, int],
    resample: Image.Resampling = RESAMPLE,
    box: tuple[float, float, float, float] | None = None,
) -> Image.Image:
    """``image.resize`` with its working memory bounded however far it shrinks (see :data:`MAX_SHRINK`)."""
    x0, y0, x1, y1 = box if box is not None else (0.0, 0.0, float(image.width), float(image.height))
    shrink = max((x1 - x0) / max(size[0], 1), (y1 - y0) / max(size[1], 1))
    gap = REDUCING_GAP if shrink > MAX_SHRINK else None
    return image.resize(size, resample, box=box, reducing_gap=gap)


def resample_into(
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
    if not (affine.axis_aligned and affine.sx > 0 and affine.sy > 0):
        raise ValueError("resample_into takes the service's maps: scale and translate, positive scales")
    _, in_h, in_w = out.shape
    full_w, full_h = full_size or (image.size[0] * reduction, image.size[1] * reduction)
    x0, x1, bx0, bx1 = _span(affine.sx, affine.tx, full_w, in_w, reduction, image.size[0])
    y0, y1, by0, by1 = _span(affine.sy, affine.ty, full_h, in_h, reduction, image.size[1])
    if x1 <= x0 or y1 <= y0:
        return
    patch = resize(image, (x1 - x0, y1 - y0), RESAMPLE, box=(bx0, by0, bx1, by1))
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
