"""What the middlewares share: reading a request header from the ASGI scope, and answering with a JSON error."""

from __future__ import annotations

import json

from starlette.types import Scope, Send

from service.http.errors import error_body, error_headers, error_status


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of the (lower-case) header ``name``, or None."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


async def send_json_error(
    send: Send, code: str, message: str, *, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer with a complete JSON error in the service's error shape, the status of ``code`` (with
    ``Retry-After`` when it is a 503)."""
    status = error_status(code)
    body = json.dumps(error_body(code, message)).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *error_headers(status),
        *(headers or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
