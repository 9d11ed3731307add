"""Skeleton overlays: ``POST /predict/render``, the drawing itself and ``python -m service.render``.

The constant-heatmap model puts every joint at a known place whatever the image, so the test knows
where the dots must be: at the keypoints ``/predict`` returns for the same image and options, scaled
to the picture. The image is uniform grey, so any coloured pixel was drawn.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from bench.common import jpeg_bytes
from pose.layout import MPII, SIDE_COLOURS, KeypointLayout
from service.imaging import reader
from service.imaging.overlay import (
    FADED_ALPHA,
    Marks,
    draw_skeleton,
    line_width_for,
    output_size,
    render_overlay,
)
from service.render import main as render_main
from tests.helpers.server import REPO_ROOT, ServiceProcess, service_env

GREY = (128, 128, 128)
SIZE = (1500, 1300)  # landscape-ish, and every constant-model joint lands inside it when letterboxed


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def grey_png() -> bytes:
    return png_bytes(Image.new("RGB", SIZE, GREY))


def post(client: httpx.Client, path: str, data: bytes, **params: object) -> httpx.Response:
    return client.post(path, params=params, files={"file": ("grey.png", data, "image/png")})


def keypoints_of(client: httpx.Client, data: bytes, **params: object) -> list[dict]:
    response = post(client, "/predict", data, **params)
    assert response.status_code == 200, response.text
    return response.json()["keypoints"]


def expected_colour(index: int, alpha: int = 255) -> np.ndarray:
    colour = np.array(SIDE_COLOURS[MPII.side(index)], np.float64)
    return (colour * alpha + np.array(GREY, np.float64) * (255 - alpha)) / 255


def check_dots(picture: np.ndarray, keypoints: list[dict], frame: tuple[int, int], alpha: int, tol: float) -> None:
    """Each joint's dot is at its keypoint (scaled to the picture) in its side's colour.

    Joints whose dots overlap another joint's dot are left out (at least 10 of 16 remain).
    """
    h, w = picture.shape[:2]
    sx, sy = w / frame[0], h / frame[1]
    points = np.array([((kp["x"] + 0.5) * sx - 0.5, (kp["y"] + 0.5) * sy - 0.5) for kp in keypoints])
    assert np.all((points >= 0) & (points < (w, h))), f"test setup: keypoints outside the picture: {points}"
    distance = np.linalg.norm(points[:, None] - points[None], axis=2) + np.eye(len(points)) * 1e9
    apart = distance.min(axis=1) > 2.5 * line_width_for((w, h)) + 2  # dot radius: 1.2 line widths
    assert apart.sum() >= 10, "test setup: the constant model's joints are too close together"
    for i in np.flatnonzero(apart):
        x, y = points[i]
        pixel = picture[round(y), round(x)].astype(np.float64)
        want = expected_colour(i, alpha)
        name = keypoints[i]["name"]
        assert np.abs(pixel - want).max() <= tol, f"{name}: pixel {pixel} at ({x:.1f}, {y:.1f}), want {want}"


# ---------------------------------------------------------------------- endpoint
def test_render_png_has_the_skeleton_where_the_keypoints_are(constant_server: ServiceProcess, grey_png: bytes) -> None:
    with constant_server.client() as client:
        keypoints = keypoints_of(client, grey_png)
        response = post(client, "/predict/render", grey_png)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    picture = Image.open(io.BytesIO(response.content))
    assert picture.format == "PNG"
    assert picture.size == (1024, round(1300 * 1024 / 1500))  # longer side down to the default max_side
    pixels = np.asarray(picture.convert("RGB"))
    check_dots(pixels, keypoints, SIZE, alpha=255, tol=6)
    # Nothing drawn far from the skeleton: the corners are the image's own grey.
    for y, x in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        assert tuple(pixels[y, x]) == GREY
    drawn = np.any(pixels != GREY, axis=2).mean()
    assert 0.005 < drawn < 0.2, f"{drawn:.1%} of the picture drawn over"


def test_render_jpeg_threshold_and_options(constant_server: ServiceProcess, grey_png: bytes) -> None:
    params = {"max_side": 500, "format": "jpeg", "threshold": 1.0, "resize": "stretch", "refine": "dark"}
    with constant_server.client() as client:
        keypoints = keypoints_of(client, grey_png, resize="stretch", refine="dark")
        response = post(client, "/predict/render", grey_png, **params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    picture = Image.open(io.BytesIO(response.content))
    assert picture.format == "JPEG"
    assert picture.size == (500, 433)
    assert all(kp["score"] < 1.0 for kp in keypoints)
    # Every score is under the threshold 1.0: every joint is drawn faded, not in full colour.
    check_dots(np.asarray(picture.convert("RGB")), keypoints, SIZE, alpha=FADED_ALPHA, tol=25)


def test_render_small_image_is_not_enlarged(constant_server: ServiceProcess) -> None:
    data = png_bytes(Image.new("RGB", (300, 260), GREY))
    with constant_server.client() as client:
        keypoints = keypoints_of(client, data)
        response = post(client, "/predict/render", data)
    assert response.status_code == 200, response.text
    picture = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
    assert picture.shape == (260, 300, 3)
    check_dots(picture, keypoints, (300, 260), alpha=255, tol=12)


@pytest.mark.parametrize(
    ("params", "data", "status", "code"),
    [
        ({}, b"just some text", 400, "invalid_image"),
        ({"format": "gif"}, None, 422, "invalid_request"),
        ({"max_side": 0}, None, 422, "invalid_request"),
        ({"threshold": 2}, None, 422, "invalid_request"),
        ({"bbox": "10,10,0,5"}, None, 422, "invalid_bbox"),
    ],
)
def test_render_errors_are_json(
    constant_server: ServiceProcess, grey_png: bytes, params: dict, data: bytes | None, status: int, code: str
) -> None:
    with constant_server.client() as client:
        response = post(client, "/predict/render", data or grey_png, **params)
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
        assert post(client, "/predict/render", grey_png).status_code == 200  # and it keeps serving


def test_demo_page_is_self_contained(constant_server: ServiceProcess) -> None:
    with constant_server.client() as client:
        response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "<canvas" in html and "fetch(`predict?" in html
    for external in ('src="http', "src='http", 'href="http', "href='http", "@import", "<script src", "url(http"):
        assert external not in html, f"the page loads something from elsewhere: {external}"


# ---------------------------------------------------------------------- offline command line
def test_cli_draws_the_same_picture(
    constant_server: ServiceProcess, constant_model_path: Path, grey_png: bytes, tmp_path: Path
) -> None:
    source = tmp_path / "grey.png"
    source.write_bytes(grey_png)
    out = tmp_path / "overlay.png"
    env = service_env(None)
    result = subprocess.run(
        [sys.executable, "-m", "service.render", str(source), "--out", str(out), "--model", str(constant_model_path),
         "--refine", "dark", "--flip"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "16 keypoints" in result.stderr
    with constant_server.client() as client:
        response = post(client, "/predict/render", grey_png, refine="dark", flip="true")
    served = np.asarray(Image.open(io.BytesIO(response.content)))
    offline = np.asarray(Image.open(out))
    assert offline.shape == served.shape
    assert np.array_equal(offline, served)


def test_cli_reports_bad_input(constant_model_path: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    command = [sys.executable, "-m", "service.render", str(text), "--out", str(tmp_path / "x.png")]
    env = service_env(None)
    bad_image = subprocess.run([*command, "--model", str(constant_model_path)], cwd=REPO_ROOT, env=env,
                               capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad_image.returncode == 2 and "not a readable image" in bad_image.stderr
    no_model = subprocess.run([*command, "--model", str(tmp_path / "missing.onnx")], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert no_model.returncode == 1 and "missing.onnx" in no_model.stderr and "not found" in no_model.stderr
    no_people = subprocess.run([*command, "--model", str(constant_model_path), "--max-people", "0"], cwd=REPO_ROOT,
                               env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert no_people.returncode == 2 and "--max-people must be positive" in no_people.stderr
    assert not (tmp_path / "x.png").exists()


def test_cli_json_alone_and_output_suffixes(constant_model_path: Path, grey_png: bytes, tmp_path: Path) -> None:
    """``--json`` without ``--out`` prints the JSON alone on stdout (and draws nothing); a suffix the command does
    not write (``.webp``: it used to write a PNG under that name) or one contradicting ``--format`` is refused, as is
    giving neither ``--out`` nor ``--json``."""
    image = tmp_path / "grey.png"
    image.write_bytes(grey_png)
    env = service_env(None)

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "service.render", str(image), "--model", str(constant_model_path), *extra]
        return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)

    alone = run("--json")
    assert alone.returncode == 0, alone.stderr
    body = json.loads(alone.stdout)  # nothing but the JSON on stdout
    assert len(body["keypoints"]) == 16 and not list(tmp_path.glob("*.jp*g"))
    webp = run("--out", str(tmp_path / "x.webp"))
    assert webp.returncode == 2 and "not '.webp'" in webp.stderr and not (tmp_path / "x.webp").exists()
    clash = run("--out", str(tmp_path / "x.png"), "--format", "jpeg")
    assert clash.returncode == 2 and "--format says jpeg" in clash.stderr
    nothing = run()
    assert nothing.returncode == 2 and "give --out" in nothing.stderr


def test_cli_draws_every_person_the_detector_finds(tmp_path: Path) -> None:
    """The offline command with the shipped models: two skiers side by side, both boxed and drawn; --max-people 1
    draws the first only."""
    photo = Image.open(REPO_ROOT / "tests" / "data" / "000000000785.jpg").convert("RGB")
    pair = Image.new("RGB", (2 * photo.width, photo.height))
    pair.paste(photo, (0, 0))
    pair.paste(photo, (photo.width, 0))
    source = tmp_path / "pair.png"
    pair.save(source)
    env = service_env(
        REPO_ROOT / "weights" / "default.onnx", detector_path=REPO_ROOT / "weights" / "person_detector.onnx"
    )
    for people, drawn in ((None, 2), (1, 1)):
        out = tmp_path / f"pair_{people}.png"
        extra = [] if people is None else ["--max-people", str(people)]
        result = subprocess.run([sys.executable, "-m", "service.render", str(source), "--out", str(out), *extra],
                                cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"{drawn} {'person' if drawn == 1 else 'people'}" in result.stderr
        picture = np.asarray(Image.open(out).convert("RGB")).astype(int)
        boxes = [x for x in range(picture.shape[1]) if (picture[200, x].min() > 235 and picture[200, x - 1].max() < 60)]
        assert len(boxes) == 2 * drawn, boxes  # each box's two sides: a white line beside its dark outline


def test_cli_decodes_on_the_configured_threads(
    constant_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``POSE_DECODE_THREADS`` reaches the offline command's decoder: a restart-marker JPEG goes in strips."""
    source = tmp_path / "big.jpg"
    source.write_bytes(jpeg_bytes(2400, 1600, quality=95, restart_rows=1))
    calls: list[tuple[int, bool]] = []

    def recording(*args: object) -> Image.Image | None:
        strips = real(*args)
        calls.append((int(args[-1]), strips is not None))  # type: ignore[call-overload]
        return strips

    real = reader.decode_in_strips
    monkeypatch.setattr(reader, "decode_in_strips", recording)
    monkeypatch.setenv("POSE_DECODE_THREADS", "4")
    assert render_main([str(source), "--out", str(tmp_path / "o.png"), "--model", str(constant_model_path)]) == 0
    assert calls and all(threads == 4 for threads, _ in calls)
    assert any(in_strips for _, in_strips in calls)


def test_render_module_never_imports_torch() -> None:
    code = "import sys, service.render; print(sorted(m for m in ('torch', 'model_export') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=service_env(None),
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------- drawing
def test_output_size() -> None:
    assert output_size((640, 425), 1024) == (640, 425)
    assert output_size((4000, 3000), 1024) == (1024, 768)
    assert output_size((3000, 4000), 1000) == (750, 1000)
    assert output_size((5000, 1), 100) == (100, 1)
    with pytest.raises(ValueError):
        output_size((10, 10), 0)


def test_draw_skeleton_colours_limbs_by_side() -> None:
    layout = KeypointLayout(names=("left_a", "left_b", "right_a", "right_b", "top"), skeleton=((0, 1), (2, 3), (1, 3)))
    image = Image.new("RGB", (200, 100), GREY)
    points = [(20.0, 20.0, 0.9), (20.0, 80.0, 0.9), (180.0, 20.0, 0.9), (180.0, 80.0, 0.9), (100.0, 10.0, 0.9)]
    pixels = np.asarray(draw_skeleton(image, points, layout))
    assert tuple(pixels[50, 20]) == SIDE_COLOURS["left"]  # middle of the left limb
    assert tuple(pixels[50, 180]) == SIDE_COLOURS["right"]
    assert tuple(pixels[80, 100]) == SIDE_COLOURS["center"]  # left-right limb
    assert tuple(pixels[10, 100]) == SIDE_COLOURS["center"]  # the unconnected joint is still a dot
    assert tuple(pixels[50, 100]) == GREY
    with pytest.raises(ValueError, match="expected 5 keypoints"):
        draw_skeleton(image, points[:4], layout)


def test_render_overlay_maps_a_reduced_decode_to_the_full_frame() -> None:
    """Keypoints in a 2000x1000 frame, picture decoded at 1/4: the dot lands at the same place."""
    layout = KeypointLayout(names=("left_x",))
    reduced = Image.new("RGB", (500, 250), GREY)
    marks = [Marks([(1499.5, 499.5, 1.0)], box=(1000.0, 100.0, 800.0, 800.0))]
    picture = render_overlay(reduced, marks, layout, max_side=1000, frame_size=(2000, 1000))
    assert picture.size == (1000, 500)
    pixels = np.asarray(picture)
    assert tuple(pixels[250, 750]) == SIDE_COLOURS["left"]  # (1499.5 + 0.5) / 2 - 0.5 = 749.5
    assert tuple(pixels[250, 600]) == GREY
    # the person box, scaled by a half with the frame: its left side at x = 500 (a white line on a dark outline),
    # from y = 50 to 450
    for row in (60, 250, 440):
        side = [tuple(pixels[row, x]) for x in range(498, 506)]
        assert any(min(p) > 200 for p in side) and any(max(p) < 60 for p in side), (row, side)
    assert tuple(pixels[20, 502]) == GREY and tuple(pixels[250, 520]) == GREY


@pytest.fixture(scope="module")
def default_limits_server(constant_model_path: Path) -> Iterator[ServiceProcess]:
    """The service's default limits (512 MB decode budget, 50 megapixels), as a hostile client meets them."""
    with ServiceProcess(constant_model_path) as server:
        yield server


@pytest.mark.slow
def test_a_large_progressive_render_does_not_wait_on_its_own_decode(default_limits_server: ServiceProcess) -> None:
    """7000 x 7000 progressive: the first decode (1/8 scale for the model) peaks at about 330 MB of the 512 MB
    budget; the render's second decode at the picture's scale used to wait for that share until the 504 at 30 s."""
    y, x = np.mgrid[0:7000, 0:7000]
    picture = np.stack([(x // 50) % 256, (y // 50) % 256, ((x + y) // 90) % 256], -1).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(picture).save(out, "JPEG", quality=70, progressive=True)
    with default_limits_server.client(timeout=60) as client:
        start = time.monotonic()
        answer = client.post("/predict/render", content=out.getvalue(), headers={"content-type": "image/jpeg"})
        took = time.monotonic() - start
    assert answer.status_code == 200, answer.text[:300]
    assert took < 10, took


@pytest.mark.slow
def test_thin_images_are_bounded_in_the_render(default_limits_server: ServiceProcess) -> None:
    """1 x 5,000,000 grey: drawn 4096 rows high (its resize used to need a kernel table of hundreds of MB, and
    at 1 x 50,000,000 a MemoryError, a 500); 1 x 50,000,000 16-bit: its decode's real cost (Pillow's row
    bookkeeping, 1.5 GB) is over the budget, a 413 from the header."""
    from tests.helpers.hostile_inputs import png_raw

    def thin(rows: int, depth: int) -> bytes:
        compressor = zlib.compressobj(9)
        row = b"\x00" * (1 + depth // 8)
        idat = b"".join(compressor.compress(row * 1_000_000) for _ in range(rows // 1_000_000)) + compressor.flush()
        return png_raw(1, rows, depth, 0, idat)

    with default_limits_server.client(timeout=60) as client:
        drawn = client.post(
            "/predict/render", params={"max_side": 4096}, content=thin(5_000_000, 8),
            headers={"content-type": "image/png"},
        )  # fmt: skip
        assert drawn.status_code == 200, drawn.text[:300]
        assert Image.open(io.BytesIO(drawn.content)).size == (1, 4096)
        refused = client.post(
            "/predict/render", params={"max_side": 4096}, content=thin(50_000_000, 16),
            headers={"content-type": "image/png"},
        )  # fmt: skip
        assert refused.status_code == 413 and refused.json()["error"]["code"] == "image_too_large", refused.text
        assert client.get("/healthz").status_code == 200
