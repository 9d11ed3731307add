#!/usr/bin/env bash
# Regenerate the README pictures from a model (default weights/default.onnx):
#   docs/example_overlay.png  the real photo with the skeleton, drawn offline by `python -m service.render`
#   docs/demo.png             a screenshot of the demo page (GET /) after uploading the same photo
# Needs the installed .venv (make install) and Debian's chromium at /usr/bin/chromium (make browser).
# Usage: scripts/make_docs_images.sh [MODEL.onnx]
set -euo pipefail

cd "$(dirname "$0")/.."
MODEL=${1:-weights/default.onnx}
PY=${PY:-.venv/bin/python}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
PHOTO=tests/data/000000000785.jpg

[ -f "$MODEL" ] || { echo "error: model $MODEL not found (train/export it first, or pass a path)" >&2; exit 1; }
[ -x "$CHROMIUM" ] || { echo "error: $CHROMIUM is missing: make browser" >&2; exit 1; }
mkdir -p docs

"$PY" -m service.render "$PHOTO" --out docs/example_overlay.png --model "$MODEL"

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LOG=$(mktemp)
POSE_MODEL_PATH="$MODEL" POSE_HOST=127.0.0.1 POSE_PORT="$PORT" "$PY" -m service >"$LOG" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; rm -f "$LOG"' EXIT

URL="http://127.0.0.1:$PORT" PHOTO="$PHOTO" CHROMIUM="$CHROMIUM" "$PY" - <<'EOF' || { cat "$LOG" >&2; exit 1; }
import os
import time
import urllib.request

from playwright.sync_api import sync_playwright

url = os.environ["URL"]
deadline = time.monotonic() + 60
while True:
    try:
        if urllib.request.urlopen(url + "/readyz", timeout=2).status == 200:
            break
    except OSError:
        pass
    if time.monotonic() > deadline:
        raise SystemExit(f"error: {url}/readyz did not answer 200 within 60 s")
    time.sleep(0.2)

args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path=os.environ["CHROMIUM"], args=args)
    page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    page.goto(url + "/")
    page.set_input_files("#file", os.environ["PHOTO"])
    # the page's CSP forbids eval, so wait from here rather than with wait_for_function's string
    page.locator("#keypoints tbody tr").nth(15).wait_for(timeout=60_000)
    page.screenshot(path="docs/demo.png", full_page=True)
    browser.close()
print("wrote docs/demo.png")
EOF
