"""The demo page end to end: a real headless Chromium (Debian's ``chromium``, driven by Playwright) on a real server.

Playwright's own browser downloads are never used: the test launches ``/usr/bin/chromium``. A missing
browser FAILS the test (``make browser`` installs it); it is never skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from pose.layout import MPII
from tests.helpers.server import ServiceProcess

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
pytestmark = pytest.mark.browser

PHOTO = Path(__file__).resolve().parent / "data" / "000000000785.jpg"
TIMEOUT_MS = 30_000

# Pixels of the canvas that differ from the bare photo drawn the same way, and the same test at each keypoint.
CANVAS_CHECK = """(points) => {
  const canvas = document.getElementById("canvas");
  const img = new Image();
  return new Promise((resolve) => {
    img.onload = () => {
      const bare = document.createElement("canvas");
      bare.width = canvas.width; bare.height = canvas.height;
      const b = bare.getContext("2d");
      b.imageSmoothingQuality = "high";  // as the page draws it
      b.drawImage(img, 0, 0, bare.width, bare.height);
      const drawn = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      const plain = b.getImageData(0, 0, bare.width, bare.height).data;
      const diff = (k) => Math.abs(drawn[k] - plain[k]) + Math.abs(drawn[k + 1] - plain[k + 1])
        + Math.abs(drawn[k + 2] - plain[k + 2]);
      let changed = 0;
      for (let k = 0; k < drawn.length; k += 4) if (diff(k) > 30) changed++;
      const sx = canvas.width / img.naturalWidth, sy = canvas.height / img.naturalHeight;
      const atKeypoints = points.map(([x, y]) => {
        const cx = Math.round((x + 0.5) * sx - 0.5), cy = Math.round((y + 0.5) * sy - 0.5);
        if (cx < 0 || cy < 0 || cx >= canvas.width || cy >= canvas.height) return null;
        return diff((cy * canvas.width + cx) * 4);
      });
      resolve({ width: canvas.width, height: canvas.height, changed, total: drawn.length / 4, atKeypoints });
    };
    img.src = URL.createObjectURL(document.getElementById("file").files[0]);
  });
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the browser tests need Debian's chromium "
            "(`make browser`, or `apt-get install -y chromium`); they do not skip.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=TIMEOUT_MS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: object, constant_server: ServiceProcess) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda exc: problems.append(str(exc)))
    # a script or style the page's Content-Security-Policy blocks shows up as a console error
    opened.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    opened.goto(constant_server.url + "/")
    yield opened
    context.close()
    assert not problems, f"JavaScript errors on the page: {problems}"


def test_page_is_served_with_a_strict_policy(constant_server: ServiceProcess) -> None:
    with constant_server.client() as client:
        headers = client.get("/").headers
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "sha256-" in policy
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"


def api_keypoints(server: ServiceProcess, **params: str) -> list[dict]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post(
            "/predict", params=params, files={"file": (PHOTO.name, PHOTO.read_bytes(), "image/jpeg")}
        )
    assert response.status_code == 200, response.text
    return response.json()["keypoints"]


def table_rows(page: object) -> list[list[str]]:
    return page.eval_on_selector_all(
        "#keypoints tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent.trim()))"
    )


def test_upload_shows_skeleton_table_and_timings(page: object, constant_server: ServiceProcess, tmp_path: Path) -> None:
    page.set_input_files("#file", str(PHOTO))
    page.wait_for_function("() => document.querySelectorAll('#keypoints tbody tr').length === 16")

    expected = api_keypoints(constant_server)
    rows = table_rows(page)
    assert [row[1] for row in rows] == list(MPII.names)
    assert [(row[2], row[3]) for row in rows] == [(f"{k['x']:.1f}", f"{k['y']:.1f}") for k in expected]
    assert [row[4] for row in rows] == [f"{k['score']:.3f}" for k in expected]

    timings = page.inner_text("#timings")
    for stage in ("decode", "preprocess", "inference", "postprocess", "round trip"):
        assert stage in timings
    assert page.is_hidden("#error")

    canvas = page.evaluate(CANVAS_CHECK, [[k["x"], k["y"]] for k in expected])
    assert canvas["width"] == 1280 and abs(canvas["height"] - 1280 * 425 / 640) <= 1, canvas  # the photo's shape
    assert 0.005 < canvas["changed"] / canvas["total"] < 0.5, canvas  # a skeleton, not a blank or repainted canvas
    inside = [d for d in canvas["atKeypoints"] if d is not None]
    assert len(inside) >= 10, canvas
    assert all(d > 30 for d in inside), f"keypoints without a dot under them: {canvas['atKeypoints']}"

    shot = tmp_path / "demo.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_person_box_and_threshold(page: object, constant_server: ServiceProcess) -> None:
    page.set_input_files("#file", str(PHOTO))
    page.wait_for_function("() => document.querySelectorAll('#keypoints tbody tr').length === 16")

    # Drag a box on the canvas: the page asks /predict again with bbox=... and shows that answer.
    box = page.locator("#canvas").bounding_box()
    with page.expect_response(lambda r: "/predict?" in r.url and "bbox=" in r.url) as answer:
        page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.1)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.9, steps=5)
        page.mouse.up()
    bbox = httpx.URL(answer.value.url).params["bbox"]
    x, y, w, h = (float(v) for v in bbox.split(","))
    assert 200 < x < 300 and 30 < y < 55 and 220 < w < 290 and 300 < h < 360, bbox
    expected = api_keypoints(constant_server, bbox=bbox)
    page.wait_for_function(
        "want => document.querySelector('#keypoints tbody tr td:nth-child(3)').textContent === want",
        arg=f"{expected[0]['x']:.1f}",
    )
    assert [(r[2], r[3]) for r in table_rows(page)] == [(f"{k['x']:.1f}", f"{k['y']:.1f}") for k in expected]
    assert page.input_value("#bbox").count(",") == 3

    # Threshold above every score: all rows are marked low (and drawn faded), nothing is refetched.
    page.eval_on_selector("#threshold", "el => { el.value = '1'; el.dispatchEvent(new Event('input')); }")
    assert page.eval_on_selector_all("#keypoints tbody tr.low", "rows => rows.length") == 16
    assert page.inner_text("#threshold-value") == "1.00"


def test_api_error_is_shown_readably(page: object, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("this is not a picture")
    page.set_input_files("#file", str(text))
    error = page.locator("#error")
    error.wait_for(state="visible")
    message = error.inner_text()
    assert "HTTP 400" in message and "not a readable image" in message, message
    assert "{" not in message, f"raw JSON shown to the user: {message}"
    assert page.is_hidden("#results")
    assert table_rows(page) == []
    page.screenshot(path=str(tmp_path / "error.png"))

    # The page recovers: a real photo next gives a result and clears the message.
    page.set_input_files("#file", str(PHOTO))
    page.wait_for_function("() => document.querySelectorAll('#keypoints tbody tr').length === 16")
    assert page.is_hidden("#error")


def test_api_reference_renders_offline(browser: object, start_service, constant_model_path):
    """``/docs`` draws every route with Swagger UI while every request to another origin is refused (an
    air-gapped deployment), and works with an API key set (the page and its assets are open)."""
    server = start_service(constant_model_path, api_key="secret-key")
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    elsewhere: list[str] = []

    def only_this_server(route: object) -> None:
        url = route.request.url
        if url.startswith(server.url):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    context.route("**/*", only_this_server)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    refused: list[str] = []  # what the page's Content-Security-Policy blocked (Chromium reports it on the console)
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    answer = page.goto(server.url + "/docs")
    page.wait_for_selector(".opblock-summary-path", state="attached")
    page.click(".opblock-summary-path >> text=/predict")  # open an operation: more of the UI draws
    page.wait_for_selector(".opblock-body", state="attached")
    paths = page.eval_on_selector_all(".opblock-summary-path", "nodes => nodes.map(n => n.textContent.trim())")
    first_endpoint_y = page.locator(".opblock").first.bounding_box()["y"]
    context.close()
    assert first_endpoint_y < 900, first_endpoint_y  # the settings table is folded away, not above the endpoints
    assert "script-src" in answer.headers["content-security-policy"]
    assert {"/predict", "/predict/batch", "/predict/render"} <= set(paths), paths
    assert not elsewhere, f"the page asked other origins for {elsewhere}"
    assert not errors, errors
    assert not refused, refused


def test_page_lists_every_person_and_shows_the_clicked_ones_keypoints(browser: object, tmp_path: Path) -> None:
    """The shipped model and person detector on the test photo twice side by side: two people listed and drawn;
    a click on a person (its button, or inside its box on the canvas) shows that person's keypoint table."""
    photo = Image.open(PHOTO).convert("RGB")
    both = Image.new("RGB", (2 * photo.width, photo.height))
    both.paste(photo, (0, 0))
    both.paste(photo, (photo.width, 0))
    pair = tmp_path / "two_skiers.png"
    both.save(pair)
    repo = PHOTO.parents[2]
    with ServiceProcess(
        repo / "weights" / "default.onnx", detector_path=repo / "weights" / "person_detector.onnx"
    ) as s:
        with httpx.Client(base_url=s.url, timeout=30) as client:
            answer = client.post("/predict", files={"file": (pair.name, pair.read_bytes(), "image/png")}).json()
        people = answer["people"]
        assert len(people) == 2
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.goto(s.url + "/")
        page.set_input_files("#file", str(pair))
        page.wait_for_function("() => document.querySelectorAll('#people button').length === 2")
        assert page.inner_text("#status").startswith("2 people")
        assert page.get_attribute("#people li:nth-child(1) button", "aria-pressed") == "true"

        def shown_x() -> list[str]:
            return [row[2] for row in table_rows(page)]

        assert shown_x() == [f"{k['x']:.1f}" for k in people[0]["keypoints"]]
        page.click("#people li:nth-child(2) button")
        assert shown_x() == [f"{k['x']:.1f}" for k in people[1]["keypoints"]]
        assert page.inner_text("#keypoints-title") == "Keypoints of person 2"

        # a click inside the first person's box on the canvas selects it again
        box, canvas = people[0]["box"], page.locator("#canvas").bounding_box()
        scale = canvas["width"] / both.width
        page.mouse.click(canvas["x"] + (box["x"] + box["width"] / 2) * scale, canvas["y"] + (box["y"] + 10) * scale)
        page.wait_for_function("() => document.querySelector('#keypoints-title').textContent.endsWith('person 1')")
        assert shown_x() == [f"{k['x']:.1f}" for k in people[0]["keypoints"]]
        page.screenshot(path=str(os.environ.get("DEMO_SHOT", tmp_path / "two_people.png")), full_page=True)
        context.close()
    assert not problems, problems


CROSS_ORIGIN_CALLS = """async ([url, b64]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const call = async (headers) => {
    try {
      const answer = await fetch(url + "/predict", { method: "POST", headers, body: bytes });
      const body = await answer.json();
      return [answer.status, body.people ? body.people.length : body.error.code, answer.headers.get("x-request-id")];
    } catch (error) {
      return ["blocked", String(error), null];
    }
  };
  return [
    await call({ "content-type": "image/jpeg", "x-api-key": "secret-key" }),
    await call({ "content-type": "image/jpeg" }),
  ];
}"""


@pytest.fixture
def app_page_server(tmp_path: Path) -> Iterator[int]:
    """A plain static server on another port: the origin of a web app that calls the API from elsewhere."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    (tmp_path / "index.html").write_text("<!doctype html><p>an app</p>")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()


def test_a_page_on_an_allowed_origin_calls_the_api_and_others_are_blocked(
    browser, start_service, constant_model_path, app_page_server
):
    """``POSE_CORS_ORIGINS``: a page served from another origin (another port, allowed) posts a photo with the key,
    through Chromium's real CORS checks (the key header makes it preflighted: the preflight needs no key); without
    the key it reads the 401. The same page from an origin not listed (``localhost`` for ``127.0.0.1``) cannot call
    the API at all."""
    import base64

    allowed = f"http://127.0.0.1:{app_page_server}"
    server = start_service(constant_model_path, api_key="secret-key", cors_origins=allowed)
    photo = base64.b64encode(PHOTO.read_bytes()).decode()
    results = {}
    for origin in (allowed, f"http://localhost:{app_page_server}"):
        context = browser.new_context()
        page = context.new_page()
        page.goto(origin + "/index.html")
        results[origin] = page.evaluate(CROSS_ORIGIN_CALLS, [server.url, photo])
        context.close()
    with_key, without_key = results[allowed]
    assert with_key[0] == 200 and with_key[1] >= 1 and with_key[2], with_key  # X-Request-ID exposed to the page
    assert without_key[:2] == [401, "unauthorized"], without_key
    (other,) = [v for k, v in results.items() if k != allowed]
    assert [r[0] for r in other] == ["blocked", "blocked"], other
