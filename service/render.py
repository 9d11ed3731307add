"""Draw predicted keypoints over an image: limbs coloured by body side, joints as dots.

Used by ``POST /predict/render`` and by the offline command line::

    python -m service.render IMAGE --out OUT.png [--model weights/default.onnx] [--threshold 0.2] [--max-side 1024]
                             [--resize letterbox|stretch] [--refine quarter|dark|none] [--flip] [--bbox x,y,w,h]

The drawing needs only Pillow and the keypoint layout; the command line loads the same
engine and predictor as the service (ONNX Runtime, never torch) and starts no server.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import mimetypes
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image, ImageDraw

from service.codec import REFINE_METHODS
from service.images import decode_rgb, open_image
from service.skeleton import KeypointLayout
from service.transform import RESIZE_MODES

if TYPE_CHECKING:  # the engine and predictor pull in ONNX Runtime: imported only where predictions are made
    from service.engine import Engine
    from service.predictor import Prediction, PredictOptions, Upload

OutputFormat = Literal["png", "jpeg"]
OUTPUT_FORMATS: tuple[str, ...] = ("png", "jpeg")
MEDIA_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg"}

DEFAULT_MAX_SIDE = 1024
DEFAULT_THRESHOLD = 0.2

# RGB per body side; the demo page (service/static/index.html) uses the same colours.
SIDE_COLOURS: dict[str, tuple[int, int, int]] = {
    "left": (56, 132, 255),
    "right": (255, 122, 26),
    "center": (40, 200, 120),
}
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


def render_overlay(
    image: Image.Image,
    points: Sequence[Point],
    layout: KeypointLayout,
    threshold: float = DEFAULT_THRESHOLD,
    max_side: int = DEFAULT_MAX_SIDE,
    frame_size: tuple[int, int] | None = None,
) -> Image.Image:
    """The picture of ``image`` at most ``max_side`` pixels wide and high, with ``points`` drawn over it.

    ``points`` are in the pixels of ``frame_size`` (default ``image.size``); ``image`` may hold the same
    picture at another resolution (an image decoded at reduced scale), it is resized to the output size.
    """
    frame = frame_size or image.size
    size = output_size(frame, max_side)
    picture = image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)
    return draw_skeleton(picture, scale_points(points, size[0] / frame[0], size[1] / frame[1]), layout, threshold)


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


def prediction_overlay(
    upload: Upload,
    prediction: Prediction,
    layout: KeypointLayout,
    max_pixels: int,
    threshold: float = DEFAULT_THRESHOLD,
    max_side: int = DEFAULT_MAX_SIDE,
    decode_threads: int = 1,
) -> Image.Image:
    """The overlay picture for one prediction of the service's predictor.

    The predictor may have decoded a large JPEG at reduced scale (enough for the model); when that is
    smaller than the picture asked for, the upload is decoded again, at the scale the picture needs.
    """
    decoded = prediction.image
    size = output_size(decoded.size, max_side)
    if decoded.image.width < size[0] or decoded.image.height < size[1]:
        decoded = decode_rgb(open_image(upload.data, max_pixels, upload.content_type), size, decode_threads)
    points = [(k.x, k.y, k.score) for k in prediction.result.keypoints]
    return render_overlay(decoded.image, points, layout, threshold, max_side, frame_size=decoded.size)


# ---------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m service.render",
        description="Predict keypoints with a local ONNX model (no server) and draw the skeleton over the image.",
    )
    parser.add_argument("image", type=Path, help="image file (JPEG, PNG, WebP, BMP, TIFF, GIF)")
    parser.add_argument("--out", type=Path, required=True, help="output picture, .png or .jpg")
    parser.add_argument("--model", type=Path, help="ONNX model (default: POSE_MODEL_PATH, else weights/default.onnx)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="joints scoring lower are faded")
    parser.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE, help="longest side of the picture")
    parser.add_argument("--resize", choices=RESIZE_MODES, default="letterbox")
    parser.add_argument("--refine", choices=REFINE_METHODS, default="quarter")
    parser.add_argument("--flip", action="store_true", help="average with the mirrored image's heatmaps")
    parser.add_argument("--bbox", help="person box x,y,w,h in image pixels")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, help="output format (default: from the --out suffix)")
    parser.add_argument("--json", action="store_true", help="also print the prediction as JSON (as POST /predict)")
    return parser


async def predict_file(
    engine: Engine, upload: Upload, options: PredictOptions, max_pixels: int, decode_threads: int = 1
) -> Prediction:
    """One prediction through the service's :class:`~service.predictor.Predictor`, without a server."""
    from service.predictor import Predictor

    async def infer(batch: np.ndarray) -> np.ndarray:
        return engine.run(batch)

    predictor = Predictor(engine.info, SimpleNamespace(infer=infer), max_pixels, decode_threads=decode_threads)
    [prediction] = await predictor.predict_uploads([upload], options)
    return prediction


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError

    from service.engine import Engine, ModelLoadError
    from service.errors import ApiError
    from service.jpeg_strips import decode_threads
    from service.predictor import PredictOptions, Upload
    from service.settings import Settings
    from service.transform import parse_bbox

    fmt = args.format or ("jpeg" if args.out.suffix.lower() in (".jpg", ".jpeg") else "png")
    if args.max_side < 1 or not 0.0 <= args.threshold <= 1.0:
        print("error: --max-side must be positive and --threshold within 0..1", file=sys.stderr)
        return 2
    try:
        settings = Settings()
        engine = Engine.load(
            args.model or settings.model_path, settings.providers, settings.intra_op_threads, settings.inter_op_threads
        )
        data = args.image.read_bytes()
        upload = Upload(data, mimetypes.guess_type(args.image.name)[0], args.image.name)
        options = PredictOptions(resize=args.resize, refine=args.refine, flip=args.flip, bbox=parse_bbox(args.bbox))
        threads = decode_threads(settings.decode_threads)  # as the service decodes
        prediction = asyncio.run(predict_file(engine, upload, options, settings.max_pixels, threads))
        layout = engine.info.metadata.layout
        picture = prediction_overlay(
            upload, prediction, layout, settings.max_pixels, args.threshold, args.max_side, threads
        )
        args.out.write_bytes(encode(picture, fmt))
    except (ValidationError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.filename or args.image}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"error: {args.image}: {exc.message}", file=sys.stderr)
        return 2
    if args.json:
        print(prediction.result.model_dump_json(indent=2))
    strong = sum(k.score >= args.threshold for k in prediction.result.keypoints)
    print(
        f"wrote {args.out} ({picture.width}x{picture.height}, {fmt}): {len(prediction.result.keypoints)} keypoints, "
        f"{strong} scoring at least {args.threshold}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
