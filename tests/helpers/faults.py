"""Fault injection for the reliability tests and report: broken model files, vanishing clients, log parsing."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.helpers import fault_models
from tests.helpers import hostile_inputs as corpus
from tests.helpers.server import ServiceProcess

PNG = {"content-type": "image/png"}


def log_lines(server: ServiceProcess) -> list[dict]:
    """The JSON access-log lines the server wrote so far."""
    return [json.loads(line) for line in server.log.splitlines() if line.startswith('{"event":"request"')]


def _truncated_model(path: Path) -> Path:
    data = fault_models.build_model().SerializeToString()
    path.write_bytes(data[: len(data) // 2])
    return path


def _wrong_contract(path: Path) -> Path:
    model = fault_models.build_model()
    model.graph.input[0].name = "pixels"
    for node in model.graph.node:
        node.input[:] = ["pixels" if name == "image" else name for name in node.input]
    path.write_bytes(model.SerializeToString())
    return path


def _written(data: bytes) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        path.write_bytes(data)
        return path

    return write


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


# kind -> (make the bad model file at a path, the reason the start-up error must name)
BAD_MODELS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (lambda path: path, "file not found"),
    "directory": (_directory, "not a regular file"),
    "random bytes": (_written(corpus.random_bytes(5000)), "not a valid ONNX model"),
    "empty": (_written(b""), "not a valid ONNX model"),
    "truncated": (_truncated_model, "not a valid ONNX model"),
    "wrong input name": (_wrong_contract, "input named 'image'"),
}


def post_green(url: str) -> tuple[int | str, float]:
    """POST the fault models' trigger image; (status or transport error name, seconds)."""
    start = time.monotonic()
    try:
        response = httpx.post(url + "/predict", content=fault_models.green_png(), headers=PNG, timeout=60)
        return response.status_code, time.monotonic() - start
    except httpx.HTTPError as exc:
        return type(exc).__name__, time.monotonic() - start


def abandon_upload(port: int, multipart: bool, reset: bool) -> None:
    """Announce a 1 MB upload, send a fifth of it, then disappear (FIN, or RST when ``reset``)."""
    body = b"\x00" * 200_000
    if multipart:
        head = (
            "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
            "Content-Length: 1000000\r\n\r\n--XyZ\r\n"
            'Content-Disposition: form-data; name="file"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        )
    else:
        head = "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 1000000\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.sendall(head.encode() + body)
    time.sleep(0.005)
    sock.close()
