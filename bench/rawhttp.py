"""A minimal HTTP/1.1 client for latency benchmarks: one keep-alive socket, each request prebuilt as bytes.

A timed call is one ``sendall`` and the receives until the ``Content-Length`` body is complete, so the
client adds little to what the server takes (``http.client`` parses headers with the email package,
httpx also encodes the multipart body on every call). It speaks just enough HTTP for the servers it
benchmarks: replies must carry ``Content-Length``; anything else raises rather than mis-measure.
"""

from __future__ import annotations

import json
import socket
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

_HEAD_END = b"\r\n\r\n"
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def ok(self, what: str) -> Reply:
        """This reply, or a RuntimeError naming ``what`` when its status is not 200."""
        if self.status != 200:
            raise RuntimeError(f"{what} answered {self.status}: {self.body[:200]!r}")
        return self


def multipart_file(field: str, filename: str, data: bytes, content_type: str) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body holding one file, and the request's ``Content-Type`` value."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    )
    return head.encode() + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class RawClient:
    """Requests over one keep-alive TCP connection to ``base`` (``http://host:port``)."""

    def __init__(self, base: str, timeout: float = 60.0) -> None:
        url = urlsplit(base)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"need an http://host:port base URL, got {base!r}")
        self.host = url.hostname
        self.port = url.port or 80
        self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def prepare(self, method: str, path: str, body: bytes = b"", content_type: str | None = None) -> bytes:
        """The complete request, to pass to :meth:`send` as often as needed."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def send(self, request: bytes) -> Reply:
        """Send a prepared request and read its whole reply."""
        self.sock.sendall(request)
        data = b""
        while (end := data.find(_HEAD_END)) < 0:
            data += self._receive()
        head, body = data[:end].decode("latin-1"), data[end + len(_HEAD_END) :]
        status_line, *header_lines = head.split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise RuntimeError(f"reply without Content-Length ({status_line!r}); this client reads no other framing")
        length = int(headers["content-length"])
        parts = [body]
        received = len(body)
        while received < length:
            chunk = self._receive()
            parts.append(chunk)
            received += len(chunk)
        if received != length:
            raise RuntimeError(f"{received - length} bytes after the reply: the server pipelined or misframed")
        return Reply(int(status_line.split(" ", 2)[1]), headers, b"".join(parts))

    def _receive(self) -> bytes:
        chunk = self.sock.recv(_CHUNK)
        if not chunk:
            raise ConnectionError(f"{self.host}:{self.port} closed the connection mid-reply")
        return chunk

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
