"""Coverage-guided fuzzing of the image-decoding path with atheris.

The target is the upload path of the service: ``open_image`` (header, limits) then ``decode_rgb`` (pixels, EXIF
orientation, RGB). A refusal is a :class:`pose.errors.PoseError` that the HTTP table answers with a client status
(:data:`CLIENT_STATUSES`); any other exception, or a domain error the table would answer otherwise, is a finding:
atheris stops and writes the input to ``crash-<sha1>``.

atheris 3.0.0 (the newest release with a CPython 3.11 Linux wheel, so nothing is compiled) is in the dev lock;
``tests/test_fuzz_images.py`` runs this harness for a few seconds with a fixed seed in every ``make test``.
A longer run, seeding the corpus with the hostile/valid images the tests generate::

    .venv/bin/python fuzz/atheris_images.py --write-seeds /tmp/pose-fuzz-corpus
    .venv/bin/python fuzz/atheris_images.py /tmp/pose-fuzz-corpus -max_total_time=300 -rss_limit_mb=2048
    .venv/bin/python fuzz/atheris_images.py crash-<sha1>        # replay one finding

Everything after the script name is passed to libFuzzer (``-help=1`` lists its options).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MAX_PIXELS = 4_000_000
CLIENT_STATUSES = frozenset({400, 413, 415, 422})  # empty/corrupt, too large, unsupported, too complex
CONTENT_TYPES = (None, "image/jpeg", "image/png", "image/gif", "image/webp", "image/tiff", "image/bmp")


def write_seeds(folder: Path) -> int:
    """Write the generated valid and hostile images as a starting corpus."""
    from tests.helpers import hostile_inputs as corpus

    folder.mkdir(parents=True, exist_ok=True)
    rgb = corpus.rgb_image(48, 32)
    seeds = {
        "jpeg": corpus.jpeg(48, 32),
        "png": corpus.png(48, 32),
        "webp": corpus.encode(rgb, "WEBP"),
        "bmp": corpus.encode(rgb, "BMP"),
        "tiff": corpus.encode(rgb, "TIFF"),
        "gif_animated": corpus.animated_gif(),
        "png16_rgb": corpus.png_16bit_rgb(),
        "png16_gray": corpus.png_16bit_gray(),
        "jpeg_cmyk": corpus.cmyk_jpeg(),
        # 800x600: decoded at 1/8 scale for min_size (64, 64), through service.imaging.jpeg.progressive's rewrite
        "jpeg_progressive": corpus.encode(corpus.rgb_image(800, 600), "JPEG", quality=75, progressive=True),
        "png_palette_alpha": corpus.palette_png_with_transparency(),
        "png_bomb_header": corpus.png_declaring(100_000, 100_000),
        "jpeg_bomb_header": corpus.jpeg_declaring(65_000, 65_000),
    }
    for name, data in seeds.items():
        (folder / name).write_bytes(data)
    print(f"wrote {len(seeds)} seeds to {folder}")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[1] == "--write-seeds":
        return write_seeds(Path(argv[2]))
    try:
        import atheris
    except ImportError:
        print("atheris is not installed: .venv/bin/pip install atheris==3.0.0", file=sys.stderr)
        return 2
    with atheris.instrument_imports():
        import PIL.Image  # noqa: F401 - instrument Pillow's Python plugins too

        from pose.errors import PoseError
        from service.http.errors import ApiError
        from service.imaging.decode import decode_rgb, open_image

    def one_input(data: bytes) -> None:
        content_type = CONTENT_TYPES[len(data) % len(CONTENT_TYPES)]  # every byte stays image data
        try:
            opened = open_image(data, MAX_PIXELS, content_type)
            decoded = decode_rgb(opened, min_size=(64, 64))
        except PoseError as exc:
            status = ApiError.from_domain(exc).status
            if status not in CLIENT_STATUSES:
                raise RuntimeError(f"{type(exc).__name__} would be answered {status}") from exc
            return
        if decoded.image.mode != "RGB":
            raise RuntimeError(f"decoded to mode {decoded.image.mode}")

    atheris.Setup(argv, one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
