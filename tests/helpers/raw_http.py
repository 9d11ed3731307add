"""Reading HTTP answers from a raw socket, for tests that speak HTTP by hand."""

from __future__ import annotations

import re
import socket


def read_rest(sock: socket.socket, received: bytes, timeout: float = 5.0) -> bytes:
    """The rest of an HTTP answer whose first bytes were ``received`` (up to its Content-Length, or EOF).

    The head and the body may arrive in separate packets, so a test that stops at the blank line may miss the body.
    """
    rest = b""
    sock.settimeout(timeout)
    while True:
        head, blank, body = (received + rest).partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if blank and length is not None and len(body) >= int(length[1]):
            return rest
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            return rest
        if not chunk:
            return rest
        rest += chunk
