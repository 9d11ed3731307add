"""The benchmarks' minimal HTTP client against the real service on a real uvicorn server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from bench.common import jpeg_bytes
from bench.fixture import bench_model
from bench.rawhttp import RawClient, multipart_file
from bench.servers import served
from service.http.middleware import SERVER_TIMING_HEADER


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with served("service", bench_model(smoke=True)) as url:
        yield url


def test_multipart_upload_round_trips(base: str) -> None:
    body, content_type = multipart_file("file", "photo.jpg", jpeg_bytes(320, 240), "image/jpeg")
    with RawClient(base) as client:
        request = client.prepare("POST", "/predict", body, content_type)
        replies = [client.send(request) for _ in range(3)]  # one keep-alive connection, request reused
    for reply in replies:
        assert reply.status == 200
        assert reply.json()["image"] == {"width": 320, "height": 240}
        assert "app;dur=" in reply.headers[SERVER_TIMING_HEADER]


def test_error_replies_are_read_whole(base: str) -> None:
    with RawClient(base) as client:
        bad = client.send(client.prepare("POST", "/predict", b"not an image", "image/jpeg"))
        assert bad.status == 400 and bad.json()["error"]["code"] == "invalid_image"
        with pytest.raises(RuntimeError, match="upload answered 400"):
            bad.ok("upload")
        assert client.send(client.prepare("GET", "/healthz")).json() == {"status": "ok"}  # still in step


def test_refuses_replies_it_cannot_frame() -> None:
    """A reply without Content-Length, or a server that hangs up, raises instead of returning a timing."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
                conn.recv(65536)  # the second request: hang up without answering

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with RawClient(f"http://127.0.0.1:{port}", timeout=10.0) as client:
            with pytest.raises(RuntimeError, match="Content-Length"):
                client.send(client.prepare("GET", "/"))
            with pytest.raises(ConnectionError, match="closed the connection"):
                client.send(client.prepare("GET", "/"))
        thread.join(10.0)


def test_needs_an_http_url() -> None:
    with pytest.raises(ValueError, match="http://host:port"):
        RawClient("https://127.0.0.1:1")
