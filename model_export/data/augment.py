"""The top-down crop recipe shared by every dataset: affine crop, augmentation, targets.

Coordinates follow :mod:`pose.codec`: pixel centres sit at integer coordinates,
so an image of width ``W`` spans ``[-0.5, W - 0.5]``. A crop is a :class:`pose.geometry.Affine`
(``Affine.crop``: the geometry the service uses too) from source pixels to crop pixels; its inverse maps
predictions back.

Every dataset returns the same sample, a dict of float32 numpy arrays:

``image``      (3, H, W) RGB in [0, 1]
``target``     (K, H/4, W/4) Gaussian heatmaps from :class:`~pose.codec.HeatmapCodec`
``weight``     (K,) 1 for joints that are labelled and inside the crop, else 0
``keypoints``  (K, 2) joint positions in crop pixels (x, y)
``visible``    (K,) 1 for joints that are labelled and inside the crop
``head_size``  () 0.6 x head box diagonal in crop pixels (the PCKh normaliser)
``inverse``    (2, 3) crop pixels -> source image pixels
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from pose.codec import HeatmapCodec
from pose.contract import DEFAULT_HEATMAP_STRIDE, DEFAULT_INPUT_SIZE
from pose.geometry import Affine
from pose.layout import MPII, KeypointLayout

INPUT_SIZE: tuple[int, int] = DEFAULT_INPUT_SIZE  # (H, W)
TARGET_SIGMA = 1.0


def default_codec(input_size: tuple[int, int] = INPUT_SIZE) -> HeatmapCodec:
    """The codec whose targets the network is trained on (sigma 1 at stride 4)."""
    return HeatmapCodec(input_size=input_size, stride=DEFAULT_HEATMAP_STRIDE, sigma=TARGET_SIGMA)


# ---------------------------------------------------------------- pixels through a crop
def _pil_affine_data(crop: Affine) -> tuple[float, ...]:
    """PIL ``Image.AFFINE`` coefficients (output -> input) for a source -> output map.

    PIL puts pixel centres at +0.5 on both sides; ours sit at integers, so
    ``p_pil = p + 0.5`` on the input and the output.
    """
    inv = crop.inverse()
    return (
        inv.a,
        inv.b,
        inv.tx - 0.5 * (inv.a + inv.b) + 0.5,
        inv.c,
        inv.d,
        inv.ty - 0.5 * (inv.c + inv.d) + 0.5,
    )


def warp_image(
    image: np.ndarray | Image.Image,
    crop: Affine,
    output_size: tuple[int, int] = INPUT_SIZE,
    fill: tuple[int, ...] | float = 0,
) -> np.ndarray:
    """Bilinear warp of ``image`` by ``crop`` (source -> output) to ``output_size`` (H, W).

    uint8 images (H, W) or (H, W, 3) warp as one PIL image; float images warp
    channel by channel in PIL's 32-bit float mode. Pixels from outside the source
    take ``fill``. Returns a numpy array of the input's dtype.
    """
    out_h, out_w = output_size
    data = _pil_affine_data(crop)
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    image = np.asarray(image)
    if image.dtype == np.uint8 and (image.ndim == 2 or image.shape[2] in (3, 4)):
        pil = Image.fromarray(image)
        out = pil.transform((out_w, out_h), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR, fillcolor=fill)
        return np.asarray(out)
    planes = image[..., None] if image.ndim == 2 else image
    fill_value = float(fill) if np.isscalar(fill) else 0.0
    warped = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(planes[..., c], np.float32), mode="F").transform(
                (out_w, out_h), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR, fillcolor=fill_value
            )
        )
        for c in range(planes.shape[2])
    ]
    out = np.stack(warped, axis=-1)
    return (out[..., 0] if image.ndim == 2 else out).astype(image.dtype, copy=False)


def flip_labels(values: np.ndarray, flip_index: Sequence[int]) -> np.ndarray:
    """Per-joint labels of a mirrored image: each joint takes its mirror partner's entry."""
    return np.asarray(values)[list(flip_index)]


def inside_crop(points: np.ndarray, output_size: tuple[int, int] = INPUT_SIZE) -> np.ndarray:
    """True where a point ``(..., 2)`` lies on the crop, ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``."""
    out_h, out_w = output_size
    x, y = points[..., 0], points[..., 1]
    return np.isfinite(x) & np.isfinite(y) & (x >= -0.5) & (x <= out_w - 0.5) & (y >= -0.5) & (y <= out_h - 0.5)


# ---------------------------------------------------------------- photometric
def color_jitter(
    image: np.ndarray,
    rng: np.random.Generator,
    brightness: float = 0.2,
    contrast: float = 0.2,
    saturation: float = 0.2,
    channel_gain: float = 0.05,
) -> np.ndarray:
    """Random brightness, contrast, saturation and per-channel gain of a float (..., 3) image in [0, 1]."""
    out = image.astype(np.float32, copy=True)
    out *= rng.uniform(1 - brightness, 1 + brightness)
    mean = out.mean()
    out = (out - mean) * rng.uniform(1 - contrast, 1 + contrast) + mean
    grey = out @ np.array([0.299, 0.587, 0.114], np.float32)
    out = (out - grey[..., None]) * rng.uniform(1 - saturation, 1 + saturation) + grey[..., None]
    out *= rng.uniform(1 - channel_gain, 1 + channel_gain, size=3).astype(np.float32)
    return np.clip(out, 0.0, 1.0, out=out)


def occlude(
    image: np.ndarray, rng: np.random.Generator, max_patches: int = 2, size: tuple[float, float] = (0.1, 0.35)
) -> np.ndarray:
    """Cover one to ``max_patches`` rectangles of a float (H, W, 3) crop, each ``size`` x the crop's side per
    axis, with another part of the same crop (clutter) or a flat colour; the joints under them keep their labels,
    so the network learns to place what it cannot see (COCO's people are often behind something)."""
    out = image.copy()
    height, width = out.shape[:2]
    for _ in range(int(rng.integers(1, max_patches + 1))):
        h = max(1, int(rng.uniform(*size) * height))
        w = max(1, int(rng.uniform(*size) * width))
        y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        if rng.random() < 0.5:
            sy, sx = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            out[y : y + h, x : x + w] = image[sy : sy + h, sx : sx + w]
        else:
            out[y : y + h, x : x + w] = rng.uniform(0.0, 1.0, size=3).astype(np.float32)
    return out


def person_mask(size: tuple[int, int], joints: np.ndarray, labelled: np.ndarray, layout: KeypointLayout) -> np.ndarray:
    """A soft float (H, W) mask of a person drawn from their labelled joints: thick limbs, the torso's polygon and
    a head disc, blurred at the edge. ``size`` is (H, W); ``joints`` (K, 2) in its pixels."""
    height, width = size
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    thickness = max(3, round(0.09 * height))
    points = [tuple(map(float, p)) for p in joints]
    for a, b in layout.skeleton:
        if labelled[a] and labelled[b]:
            draw.line([points[a], points[b]], fill=255, width=thickness)
    for j in np.flatnonzero(labelled):
        x, y = points[j]
        draw.ellipse([x - thickness / 2, y - thickness / 2, x + thickness / 2, y + thickness / 2], fill=255)
    corners = ("right_shoulder", "left_shoulder", "left_hip", "right_hip")
    torso = [layout.names.index(n) for n in corners if n in layout.names]
    if len(torso) == 4 and all(labelled[j] for j in torso):
        draw.polygon([points[j] for j in torso], fill=255)
    head = [layout.names.index(n) for n in ("upper_neck", "head_top") if n in layout.names]
    if len(head) == 2 and all(labelled[j] for j in head):
        (x0, y0), (x1, y1) = points[head[0]], points[head[1]]
        cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, 0.6 * float(np.hypot(x1 - x0, y1 - y0))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    blurred = mask.filter(ImageFilter.GaussianBlur(max(1.0, thickness / 6)))
    return np.asarray(blurred, np.float32) / 255.0


def paste_person(
    image: np.ndarray,
    person: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.7, 1.1),
    offset: tuple[float, float] = (0.3, 0.6),
) -> np.ndarray:
    """Another person (a float (H, W, 3) crop and its :func:`person_mask`) pasted into the float (H, W, 3) crop
    ``image``, scaled by ``scale`` and moved sideways by ``offset`` x the crop's width (left or right) so that the
    crop's own person stays the one in the centre, now beside or behind someone, as in COCO's crowds."""
    height, width = image.shape[:2]
    s = float(rng.uniform(*scale))
    h, w = max(1, round(person.shape[0] * s)), max(1, round(person.shape[1] * s))
    shrunk = np.asarray(
        Image.fromarray(np.uint8(np.clip(person, 0, 1) * 255)).resize((w, h), Image.Resampling.BILINEAR)
    )
    alpha = np.asarray(Image.fromarray(np.uint8(mask * 255)).resize((w, h), Image.Resampling.BILINEAR)) / 255.0
    side = 1 if rng.random() < 0.5 else -1
    cx = width / 2 + side * float(rng.uniform(*offset)) * width
    cy = height / 2 + float(rng.uniform(-0.1, 0.1)) * height
    x0, y0 = round(cx - w / 2), round(cy - h / 2)
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(width, x0 + w), min(height, y0 + h)
    if ix1 <= ix0 or iy1 <= iy0:
        return image
    out = image.copy()
    a = alpha[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0, None].astype(np.float32)
    src = shrunk[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0].astype(np.float32) / 255.0
    out[iy0:iy1, ix0:ix1] = a * src + (1 - a) * out[iy0:iy1, ix0:ix1]
    return out


# ---------------------------------------------------------------- the recipe
@dataclass(frozen=True)
class AugmentConfig:
    """Random crop parameters of the training recipe (Newell et al.: rotation +/-30, scale 0.75-1.25, flip)."""

    rotation: float = 30.0  # degrees, uniform in [-rotation, rotation]
    rotation_prob: float = 1.0
    scale: tuple[float, float] = (0.75, 1.25)  # box size factor; > 1 zooms out
    flip_prob: float = 0.5
    shift: float = 0.0  # centre jitter, fraction of the box size (per axis, uniform)
    shift_prob: float = 0.0
    color: float = 0.2  # colour-jitter strength; 0 disables
    occlusion_prob: float = 0.0  # chance of covering part of the crop (:func:`occlude`)


@dataclass(frozen=True)
class CropParams:
    """One draw of the random crop."""

    scale: float = 1.0
    rotation: float = 0.0
    flip: bool = False
    shift: tuple[float, float] = (0.0, 0.0)  # fraction of the box size


def sample_crop_params(rng: np.random.Generator, config: AugmentConfig) -> CropParams:
    """Draw scale, rotation, flip and shift for one sample."""
    scale = float(rng.uniform(*config.scale))
    rotation = float(rng.uniform(-config.rotation, config.rotation)) if rng.random() < config.rotation_prob else 0.0
    flip = bool(rng.random() < config.flip_prob)
    shift = (0.0, 0.0)
    if config.shift > 0 and rng.random() < config.shift_prob:
        shift = (float(rng.uniform(-config.shift, config.shift)), float(rng.uniform(-config.shift, config.shift)))
    return CropParams(scale=scale, rotation=rotation, flip=flip, shift=shift)


def top_down_sample(
    image: np.ndarray | Image.Image,
    keypoints: np.ndarray,
    visible: np.ndarray,
    center: Sequence[float],
    box_size: float,
    head_size: float,
    codec: HeatmapCodec | None = None,
    params: CropParams | None = None,
    rng: np.random.Generator | None = None,
    config: AugmentConfig | None = None,
    flip_index: Sequence[int] = tuple(MPII.flip_index),
    fill: int | tuple[int, int, int] = 0,
) -> dict[str, np.ndarray]:
    """Crop one person and build its training sample (see the module docstring).

    ``image`` is the uint8 RGB source, ``keypoints`` ``(K, 2)`` and ``head_size``
    are in its pixels, ``box_size`` is the side of the square source region that
    fills the crop before augmentation. With ``params`` the crop uses them; with
    ``rng`` (and ``config``, default :class:`AugmentConfig`) it draws them and
    jitters colours; with neither the crop is the plain, centred one.
    """
    codec = codec or default_codec()
    config = config or AugmentConfig()
    if params is None:
        params = sample_crop_params(rng, config) if rng is not None else CropParams()
    size = float(box_size) * params.scale
    centre = np.asarray(center, np.float64) + np.asarray(params.shift) * float(box_size)
    crop = Affine.crop(centre, size, codec.input_size, params.rotation, params.flip)

    pixels = warp_image(image, crop, codec.input_size, fill=fill).astype(np.float32) / 255.0
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    if rng is not None and config.color > 0:
        pixels = color_jitter(pixels, rng, config.color, config.color, config.color)
    if rng is not None and config.occlusion_prob > 0 and rng.random() < config.occlusion_prob:
        pixels = occlude(pixels, rng)

    points = crop.to_input(keypoints)
    labelled = np.asarray(visible).astype(bool)
    if params.flip:
        points = flip_labels(points, flip_index)
        labelled = flip_labels(labelled, flip_index)
    vis = labelled & inside_crop(points, codec.input_size)
    target, weight = codec.encode(points, vis)
    return {
        "image": np.ascontiguousarray(pixels.transpose(2, 0, 1)),
        "target": target,
        "weight": weight,
        "keypoints": points.astype(np.float32),
        "visible": vis.astype(np.float32),
        "head_size": np.float32(head_size * codec.input_size[0] / size),
        "inverse": crop.inverse().matrix.astype(np.float32),
    }
