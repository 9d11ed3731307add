"""Draw predicted keypoints over an image: limbs coloured by body side, joints as dots.

Used by ``POST /predict/render`` and by the offline command line ``python -m service.render``. Needs
only Pillow and the keypoint layout.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

from pose.layout import SIDE_COLOURS, KeypointLayout
from service.imaging.decode import DecodedImage
from service.imaging.resample import resize

OutputFormat = Literal["png", "jpeg"]
OUTPUT_FORMATS: tuple[str, ...] = ("png", "jpeg")
MEDIA_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg"}

DEFAULT_MAX_SIDE = 1024
DEFAULT_THRESHOLD = 0.2

OUTLINE = (20, 20, 20)
FADED_ALPHA = 90  # alpha (of 255) for joints below the threshold and limbs touching them
SUPERSAMPLE = 2  # draw at this multiple and downscale: anti-aliased lines without extra dependencies
SUPERSAMPLE_MAX_PIXELS = 4_000_000  # larger pictures are drawn at 1x (the overlay layer stays small)

Point = tuple[float, float, float]  # x, y, score in image pixels


def line_width_for(size: tuple[int, int]) -> float:
    """Limb width in pixels for an image of ``(width, height)``: about 0.6% of the longer side, at least 2."""
    return max(2.0, max(size) / 160.0)


def output_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``size`` (width, height) shrunk to fit ``max_side`` on its longer side, aspect ratio kept (never enlarged)."""
    if max_side < 1:
        raise ValueError(f"max_side must be a positive integer, got {max_side}")
    width, height = size
    longer = max(width, height)
    if longer <= max_side:
        return width, height
    scale = max_side / longer
    return max(1, int(width * scale + 0.5)), max(1, int(height * scale + 0.5))


def scale_points(points: Iterable[Point], scale_x: float, scale_y: float | None = None) -> list[Point]:
    """Map keypoints to a resized image (pixel centres at integer coordinates, so scale about -0.5)."""
    sy = scale_x if scale_y is None else scale_y
    return [((x + 0.5) * scale_x - 0.5, (y + 0.5) * sy - 0.5, s) for x, y, s in points]


def draw_skeleton(
    image: Image.Image,
    points: Sequence[Point],
    layout: KeypointLayout,
    threshold: float = DEFAULT_THRESHOLD,
) -> Image.Image:
    """A copy of ``image`` (RGB) with the skeleton drawn over it.

    ``points`` holds one ``(x, y, score)`` per joint of ``layout``, in ``image`` pixels.
    Joints scoring below ``threshold``, and limbs touching them, are drawn faded.
    """
    if len(points) != layout.num_joints:
        raise ValueError(f"expected {layout.num_joints} keypoints for this layout, got {len(points)}")
    base = image.convert("RGB")
    ss = SUPERSAMPLE if base.width * base.height <= SUPERSAMPLE_MAX_PIXELS else 1
    overlay = Image.new("RGBA", (base.width * ss, base.height * ss), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    width = line_width_for(base.size) * ss
    radius = 1.2 * width
    strong = [score >= threshold for _, _, score in points]

    def at(i: int) -> tuple[float, float]:
        x, y, _ = points[i]
        return (x + 0.5) * ss - 0.5, (y + 0.5) * ss - 0.5

    for faded in (True, False):  # faded parts first, so confident ones stay on top
        for a, b in layout.skeleton:
            if (not (strong[a] and strong[b])) != faded:
                continue
            alpha = FADED_ALPHA if faded else 255
            colour = SIDE_COLOURS[layout.limb_side(a, b)]
            ends = [at(a), at(b)]
            draw.line(ends, fill=(*OUTLINE, alpha * 2 // 3), width=round(width + 2 * ss))
            draw.line(ends, fill=(*colour, alpha), width=round(width))
        for i in range(layout.num_joints):
            if strong[i] == faded:
                continue
            alpha = FADED_ALPHA if faded else 255
            x, y = at(i)
            box = (x - radius, y - radius, x + radius, y + radius)
            draw.ellipse(box, fill=(*SIDE_COLOURS[layout.side(i)], alpha), outline=(255, 255, 255, alpha), width=ss)

    if ss > 1:
        overlay = overlay.resize(base.size, Image.Resampling.BOX)
    return Image.alpha_composite(base.convert("RGBA"), overlay).convert("RGB")


@dataclass(frozen=True)
class Marks:
    """One person to draw: ``(x, y, score)`` per joint and the person's box ``(x, y, w, h)`` (pixel edges), if any."""

    points: Sequence[Point]
    box: tuple[float, float, float, float] | None = None


def draw_box(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """``image`` with a person box drawn over it: a thin white line on a dark outline, so it shows on any photo."""
    width = max(1, round(line_width_for(image.size) / 2))
    x, y, w, h = box
    corners = [x, y, x + w - 1, y + h - 1]
    draw = ImageDraw.Draw(image)
    draw.rectangle(corners, outline=OUTLINE, width=width + 2)
    draw.rectangle(
        [corners[0] + 1, corners[1] + 1, corners[2] - 1, corners[3] - 1], outline=(255, 255, 255), width=width
    )
    return image


def render_overlay(
    image: Image.Image,
    people: Sequence[Marks],
    layout: KeypointLayout,
    threshold: float = DEFAULT_THRESHOLD,
    max_side: int = DEFAULT_MAX_SIDE,
    frame_size: tuple[int, int] | None = None,
) -> Image.Image:
    """The picture of ``image`` at most ``max_side`` pixels wide and high, with each person's box and skeleton.

    The marks are in the pixels of ``frame_size`` (default ``image.size``); ``image`` may hold the same picture at
    another resolution (an image decoded at reduced scale), it is resized to the output size.
    """
    frame = frame_size or image.size
    size = output_size(frame, max_side)
    sx, sy = size[0] / frame[0], size[1] / frame[1]
    picture = image.convert("RGB") if image.size == size else resize(image, size, Image.Resampling.LANCZOS)
    for person in people:
        if person.box is not None:
            x, y, w, h = person.box
            draw_box(picture, (x * sx, y * sy, w * sx, h * sy))
    for person in people:
        picture = draw_skeleton(picture, scale_points(person.points, sx, sy), layout, threshold)
    return picture


def encode(image: Image.Image, fmt: OutputFormat | str = "png") -> bytes:
    """PNG or JPEG bytes of an RGB image."""
    fmt = fmt.lower()
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"format must be one of {OUTPUT_FORMATS}, got {fmt!r}")
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, format="PNG", optimize=False, compress_level=6)
    else:
        image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def overlay_picture(
    decoded: DecodedImage,
    people: Sequence[Marks],
    layout: KeypointLayout,
    reread: Callable[[tuple[int, int]], DecodedImage],
    threshold: float = DEFAULT_THRESHOLD,
    max_side: int = DEFAULT_MAX_SIDE,
) -> Image.Image:
    """The overlay picture of ``people`` (marks in the pixels of ``decoded.size``) predicted on ``decoded``.

    The pipeline may have decoded a large JPEG at reduced scale (enough for the model); when that is
    smaller than the picture asked for, ``reread(size)`` decodes the upload again at the scale it needs.
    """
    size = output_size(decoded.size, max_side)
    if decoded.image.width >= size[0] and decoded.image.height >= size[1]:
        return render_overlay(decoded.image, people, layout, threshold, max_side, frame_size=decoded.size)
    larger = reread(size)
    try:
        return render_overlay(larger.image, people, layout, threshold, max_side, frame_size=larger.size)
    finally:
        larger.release()


def marks(points: np.ndarray, scores: np.ndarray, box: tuple[float, float, float, float] | None = None) -> Marks:
    """One person's keypoints ``(K, 2)`` and scores ``(K,)`` as marks to draw."""
    return Marks([(x, y, s) for (x, y), s in zip(points.tolist(), scores.tolist(), strict=True)], box)
