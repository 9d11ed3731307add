"""Bytes -> oriented RGB: formats, modes, EXIF, reduced-scale JPEG decoding and the limits."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from pose.errors import PoseError
from service.imaging.decode import DecodedImage, decode_rgb, open_image, to_rgb
from tests.helpers.answers import http_answer
from tests.helpers.images import blob_image, encode, with_orientation

LIMIT = 50_000_000


def decode(data: bytes, min_size: tuple[int, int] | None = None) -> DecodedImage:
    return decode_rgb(open_image(data, LIMIT), min_size)


def best_of(runs: int, work: Callable[[], DecodedImage]) -> tuple[DecodedImage, float]:
    """The result and the fastest of ``runs`` timings (robust to a busy machine)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return result, min(times)


def rgb_of(image: Image.Image) -> np.ndarray:
    return np.asarray(decode(encode(image, "PNG")).image).astype(int)


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("JPEG", {"quality": 95}), ("PNG", {}), ("WEBP", {"lossless": True}), ("BMP", {}), ("TIFF", {}), ("GIF", {})],
)
def test_formats_decode_to_the_same_picture(fmt, params):
    picture = Image.new("RGB", (40, 30), (200, 30, 60))
    picture.paste((10, 220, 90), (5, 5, 20, 25))
    decoded = decode(encode(picture, fmt, **params))
    assert decoded.image.mode == "RGB" and decoded.size == (40, 30) and decoded.reduction == 1.0
    got, want = np.asarray(decoded.image).astype(int), np.asarray(picture).astype(int)
    if fmt == "JPEG":  # lossy: compare away from the colour edges
        for x, y in ((12, 15), (35, 25), (2, 28)):
            assert np.abs(got[y, x] - want[y, x]).max() <= 12, (x, y)
    else:
        assert np.array_equal(got, want)


def test_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    pixel = np.asarray(decode(buffer.getvalue()).image)[8, 8]
    assert tuple(pixel) == (255, 0, 0)


def test_modes_convert_correctly():
    assert rgb_of(Image.new("L", (4, 4), 77))[0, 0].tolist() == [77, 77, 77]
    assert rgb_of(Image.new("1", (4, 4), 1))[0, 0].tolist() == [255, 255, 255]
    # palette with a transparent index: composited over white
    p = Image.new("P", (4, 4), 1)
    p.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    p.putpixel((0, 0), 0)
    p.info["transparency"] = 0
    converted = rgb_of(p)
    assert converted[0, 0].tolist() == [255, 255, 255] and converted[1, 1].tolist() == [10, 20, 30]
    # RGBA half transparent over white
    assert rgb_of(Image.new("RGBA", (4, 4), (0, 0, 0, 128)))[0, 0].tolist() == [127, 127, 127]
    assert rgb_of(Image.new("LA", (4, 4), (0, 0)))[0, 0].tolist() == [255, 255, 255]
    # 16-bit grey keeps its brightness instead of clipping
    sixteen = Image.fromarray(np.full((4, 4), 32896, np.uint16))
    assert sixteen.mode.startswith("I;16")
    assert rgb_of(sixteen)[0, 0].tolist() == [128, 128, 128]
    assert np.asarray(to_rgb(Image.new("I", (2, 2), 65535)))[0, 0].tolist() == [255, 255, 255]
    assert np.asarray(to_rgb(Image.new("F", (2, 2), 0.5)))[0, 0].tolist() == [128, 128, 128]


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    pixel = np.asarray(decode(encode(cmyk, "JPEG", quality=95)).image)[8, 8].astype(int)
    assert pixel[0] > 200 and pixel[1] < 50 and pixel[2] < 50


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    upright = blob_image(60, 40, (45.0, 10.0), 3.0)
    decoded = decode(with_orientation(upright, orientation))
    assert decoded.size == (60, 40) and decoded.image.size == (60, 40)
    red = np.asarray(decoded.image)[..., 0]
    y, x = np.unravel_index(red.argmax(), red.shape)
    assert abs(x - 45) <= 1 and abs(y - 10) <= 1


def test_png_orientation_is_applied():
    upright = blob_image(60, 40, (45.0, 10.0), 3.0)
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode(encode(upright.transpose(Image.Transpose.ROTATE_90), "PNG", exif=exif.tobytes()))
    assert decoded.size == (60, 40)


def test_large_jpeg_is_decoded_at_reduced_scale():
    # a photo-like 12-megapixel picture: smooth shading plus fine texture
    shade = Image.linear_gradient("L").resize((4000, 3000))
    texture = Image.effect_noise((4000, 3000), 12)
    photo = Image.merge("RGB", (shade, texture, Image.blend(shade, texture, 0.5)))
    data = encode(photo, "JPEG", quality=85)
    full, full_ms = best_of(3, lambda: decode(data))
    small, small_ms = best_of(3, lambda: decode(data, min_size=(256, 192)))
    assert full.reduction == 1.0 and full.image.size == (4000, 3000)
    assert small.reduction == 8.0 and small.image.size == (500, 375) and small.size == (4000, 3000)
    # entropy decoding remains, the inverse DCT and colour work shrink 64x: typically ~0.5x (loose for busy hosts)
    assert small_ms < full_ms


def test_rotated_large_jpeg_reduction_uses_the_stored_axes():
    upright = Image.new("RGB", (3000, 1000), (50, 60, 70))
    decoded = decode(with_orientation(upright, 6, quality=80), min_size=(256, 86))
    assert decoded.size == (3000, 1000) and decoded.reduction == 8.0
    assert decoded.image.size == (375, 125)


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 400, "empty_image"),
        (b"GIF89a" + b"\x00" * 5, 400, "invalid_image"),
        (b"hello", 400, "invalid_image"),
        (encode(Image.new("RGB", (8, 8)), "ICO"), 415, "unsupported_media_type"),
        (encode(Image.new("RGB", (8, 8)), "PPM"), 415, "unsupported_media_type"),
    ],
)
def test_bad_bytes(data, status, code):
    with pytest.raises(PoseError) as caught:
        decode(data)
    assert http_answer(caught.value) == (status, code)


def test_declared_unsupported_type_is_415():
    with pytest.raises(PoseError) as caught:
        open_image(b"<svg/>", LIMIT, "image/svg+xml")
    assert http_answer(caught.value)[0] == 415


def test_pixel_limit_is_checked_before_decoding():
    data = encode(Image.new("RGB", (300, 200)), "PNG")
    with pytest.raises(PoseError) as caught:
        open_image(data, max_pixels=300 * 200 - 1)
    assert http_answer(caught.value) == (413, "too_many_pixels")
    assert open_image(data, max_pixels=300 * 200).size == (300, 200)


def test_truncated_image_is_400():
    data = encode(Image.effect_noise((200, 200), 50).convert("RGB"), "JPEG")
    opened = open_image(data[: len(data) // 3], LIMIT)  # the header is intact
    with pytest.raises(PoseError) as caught:
        decode_rgb(opened)
    assert http_answer(caught.value) == (400, "invalid_image")
