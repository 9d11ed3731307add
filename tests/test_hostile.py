"""Hostile and broken uploads against a real server: each gets its documented status and JSON error body,
and the same server answers a good request right after. The corpus is generated in
``tests/helpers/hostile_inputs.py`` (no binary blobs)."""

from __future__ import annotations

import contextlib
import json
import socket
import time

import httpx
import pytest

from tests.conftest import CONSTANT_SERVER_LIMITS
from tests.helpers import hostile_inputs as corpus
from tests.helpers.raw_http import read_rest
from tests.helpers.server import ServiceProcess

CASES = corpus.corpus(max_files=int(CONSTANT_SERVER_LIMITS["max_files"]))
GOOD = corpus.jpeg(120, 90, seed=3)


def assert_serves(client: httpx.Client) -> None:
    """A good request succeeds: 16 keypoints for the 120x90 test image."""
    response = client.post("/predict", content=GOOD, headers={"content-type": "image/jpeg"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["keypoints"]) == 16
    assert body["image"] == {"width": 120, "height": 90}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_gets_documented_answer(case: corpus.HostileCase, constant_server: ServiceProcess) -> None:
    with constant_server.client() as client:
        response = client.post(case.path, **case.request_kwargs())
        assert response.status_code == case.status, f"{case.name}: {response.status_code} {response.text[:300]}"
        assert response.headers.get("x-request-id"), "every answer carries a request id"
        body = response.json()
        if case.status >= 400:
            assert set(body) == {"error"}, body
            assert set(body["error"]) == {"code", "message"}, body
            assert body["error"]["message"]
            if case.codes:
                assert body["error"]["code"] in case.codes, body
        elif case.path == "/predict":
            assert len(body["keypoints"]) == 16
        assert_serves(client)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def _status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length-omitted-lie"])
def test_over_limit_upload_streamed_slowly_is_cut_off(chunked: bool, constant_server: ServiceProcess) -> None:
    """An upload over POSE_MAX_UPLOAD_BYTES, trickled in: 413 as soon as the limit is passed, not at the end."""
    limit = int(CONSTANT_SERVER_LIMITS["max_upload_bytes"])
    piece = b"\xff" * 65536
    total_pieces = (limit * 2) // len(piece)
    # the second variant declares a small Content-Length, then keeps sending: the server must read only that much
    declared = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {limit * 2}"
    head = f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n{declared}\r\n\r\n"
    sent = 0
    response = b""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", constant_server.port), timeout=10) as sock:
        sock.sendall(head.encode())
        sock.setblocking(False)
        for _ in range(total_pieces):
            with contextlib.suppress(BlockingIOError):
                response += sock.recv(65536)
            if response:
                break
            try:
                sock.sendall(_chunk(piece) if chunked else piece)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
            time.sleep(0.01)
        sock.setblocking(True)
        response += read_rest(sock, response, timeout=10)
    assert response, "no answer"
    assert _status_of(response) == 413, response[:300]
    assert b"payload_too_large" in response
    if chunked:  # with a declared length over the limit the answer comes before any byte is read
        assert sent < limit * 2, f"the server read all {sent} bytes before answering"
        assert sent <= limit + 4 * len(piece), f"answered only after {sent} bytes (limit {limit})"
    assert time.monotonic() - started < 30
    with constant_server.client() as client:
        assert_serves(client)


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        ("req-42.abc:7", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("two words", False),
        ('{"json": 1}', False),
        ("-leading-dash", False),
        ("<script>", False),
    ],
)
def test_request_id_is_echoed_only_when_sane(sent: str, echoed: bool, constant_server: ServiceProcess) -> None:
    with constant_server.client() as client:
        response = client.get("/healthz", headers={"x-request-id": sent})
    rid = response.headers["x-request-id"]
    assert (rid == sent) is echoed
    if not echoed:
        assert len(rid) == 32
        assert all(c in "0123456789abcdef" for c in rid)


def test_one_json_log_line_per_request_without_image_bytes(constant_server: ServiceProcess) -> None:
    rid = f"log-check-{time.monotonic_ns()}"
    secret_bytes = corpus.jpeg(64, 48, seed=11)
    with constant_server.client() as client:
        response = client.post(
            "/predict",
            params={"flip": "true"},
            content=secret_bytes,
            headers={"content-type": "image/jpeg", "x-request-id": rid},
        )
        assert response.status_code == 200
        assert client.get("/healthz").status_code == 200  # the line is written once the response is complete
    lines = [json.loads(line) for line in constant_server.log.splitlines() if f'"request_id":"{rid}"' in line]
    assert len(lines) == 1
    line = lines[0]
    assert line["method"] == "POST"
    assert line["path"] == "/predict"  # no query string
    assert line["status"] == 200
    assert line["duration_ms"] > 0
    assert line["request_bytes"] == len(secret_bytes)
    assert line["image"] == {"width": 64, "height": 48, "count": 1}
    assert set(line["timings_ms"]) == {"decode", "detect", "preprocess", "inference", "postprocess"}
    assert "flip" not in json.dumps(line)
