"""The offline command line: predict with a local ONNX model (no server) and draw the skeleton::

    .venv/bin/python -m service.render IMAGE [--out OUT.png|OUT.jpg] [--json] [--model weights/default.onnx]
        [--threshold 0.2] [--max-side 1024] [--resize letterbox|stretch] [--refine quarter|dark|none] [--flip]
        [--bbox x,y,w,h] [--max-people N]

It loads the engine and builds the pipeline exactly as the service does (ONNX Runtime or OpenVINO, never torch),
draws with :mod:`service.imaging.overlay` into ``--out``, and with ``--json`` prints the same JSON as
``POST /predict`` on stdout (alone: the summary line goes to stderr). At least one of the two is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import mimetypes
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from pose.codec import REFINE_METHODS
from pose.errors import PoseError
from pose.geometry import RESIZE_MODES, parse_bbox
from service.http.schemas import ModelRef, PoseResult
from service.imaging.overlay import DEFAULT_MAX_SIDE, DEFAULT_THRESHOLD, OUTPUT_FORMATS, encode, overlay_picture
from service.inference.detector import PersonDetector
from service.inference.engine import Engine, ModelLoadError
from service.inference.pipeline import PredictOptions, Upload, build_pipeline, people_marks
from service.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m service.render",
        description="Predict keypoints with a local ONNX model (no server) and draw the skeleton over the image.",
    )
    parser.add_argument("image", type=Path, help="image file (JPEG, PNG, WebP, BMP, TIFF, GIF)")
    parser.add_argument("--out", type=Path, help="output picture, .png or .jpg/.jpeg")
    parser.add_argument("--model", type=Path, help="ONNX model (default: POSE_MODEL_PATH, else weights/default.onnx)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="joints scoring lower are faded")
    parser.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE, help="longest side of the picture")
    parser.add_argument("--resize", choices=RESIZE_MODES, default="letterbox")
    parser.add_argument("--refine", choices=REFINE_METHODS, default="quarter")
    parser.add_argument("--flip", action="store_true", help="average with the mirrored image's heatmaps")
    parser.add_argument("--bbox", help="person box x,y,w,h in image pixels (skips the person detector)")
    parser.add_argument(
        "--max-people", type=int, help="most people drawn, the most prominent first (default POSE_MAX_PEOPLE)"
    )
    parser.add_argument("--format", choices=OUTPUT_FORMATS, help="output format (default: from the --out suffix)")
    parser.add_argument("--json", action="store_true", help="print the prediction as JSON on stdout (as POST /predict)")
    return parser


SUFFIX_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}


def output_format(out: Path | None, chosen: str | None) -> str:
    """The picture's format: the ``--out`` suffix's (ValueError for a suffix this command does not write, or one
    that contradicts ``--format``)."""
    if out is None:
        return chosen or "png"
    by_suffix = SUFFIX_FORMATS.get(out.suffix.lower())
    if by_suffix is None:
        raise ValueError(
            f"--out {out}: the picture is written as .png or .jpg/.jpeg, not {out.suffix or 'no suffix'!r}"
        )
    if chosen is not None and chosen != by_suffix:
        raise ValueError(f"--out {out} says {by_suffix}, --format says {chosen}")
    return by_suffix


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out is None and not args.json:
        print("error: nothing to do: give --out PICTURE, --json, or both", file=sys.stderr)
        return 2
    try:
        fmt = output_format(args.out, args.format)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.max_side < 1 or not 0.0 <= args.threshold <= 1.0 or (args.max_people is not None and args.max_people < 1):
        print("error: --max-side and --max-people must be positive and --threshold within 0..1", file=sys.stderr)
        return 2
    try:
        settings = Settings()
        engine = Engine.from_settings(settings, args.model)
        detector = PersonDetector.from_settings(settings)
        pipeline = build_pipeline(engine, settings, detector=detector)  # decodes and predicts as the service does
        upload = Upload(args.image.read_bytes(), mimetypes.guess_type(args.image.name)[0], args.image.name)
        bbox = parse_bbox(args.bbox)
        options = PredictOptions(args.resize, args.refine, args.flip, bbox, args.max_people)
        [prediction] = asyncio.run(pipeline.predict_uploads([upload], options, keep_images=args.out is not None))
        if args.out is not None:
            picture = overlay_picture(
                prediction.decoded(),
                people_marks(prediction),
                pipeline.layout,
                pipeline.rereader(upload),
                args.threshold,
                args.max_side,
            )
            args.out.write_bytes(encode(picture, fmt))
    except (ValidationError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.filename or args.image}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except PoseError as exc:
        print(f"error: {args.image}: {exc.message}", file=sys.stderr)
        return 2
    if args.json:
        model = ModelRef(name=engine.info.name, version=engine.info.version)
        print(PoseResult.from_prediction(prediction, pipeline.layout.names, model).model_dump_json(indent=2))
    strong = int((prediction.scores >= args.threshold).sum())
    found = f"{len(prediction.people)} {'person' if len(prediction.people) == 1 else 'people'}"
    wrote = f"wrote {args.out} ({picture.width}x{picture.height}, {fmt}): " if args.out is not None else ""
    print(
        f"{wrote}{found}; the first: {len(prediction.scores)} keypoints, {strong} scoring at least {args.threshold}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
