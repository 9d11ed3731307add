"""The API key: when one is configured, every path but :data:`OPEN_PATHS` needs it."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from service.http.docs import DOC_PATHS
from service.http.middleware.responses import header, send_json_error

# Reachable without the API key (exact paths). "/" is the static demo page: it holds no data, asks for the
# key itself and sends it as X-API-Key with every call it makes.
OPEN_PATHS: frozenset[str] = frozenset({"/", "/healthz", "/readyz", "/openapi.json", *DOC_PATHS})


class ApiKey:
    """When a key is configured, every path but :data:`OPEN_PATHS` needs ``Authorization: Bearer KEY``
    or ``X-API-Key: KEY`` (constant-time comparison); otherwise 401. The key is never echoed or logged."""

    def __init__(self, app: ASGIApp, key: str, open_paths: Iterable[str] = OPEN_PATHS) -> None:
        if not key:
            raise ValueError("the API key must not be empty")
        self.app = app
        self._key = key.encode()
        self.open_paths = frozenset(open_paths)

    def _presented(self, scope: Scope) -> list[bytes]:
        found = []
        auth = header(scope, b"authorization")
        if auth is not None:
            scheme, _, token = auth.partition(b" ")
            if scheme.lower() == b"bearer":
                found.append(token.strip())
        api_key = header(scope, b"x-api-key")
        if api_key is not None:
            found.append(api_key.strip())
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.open_paths:
            await self.app(scope, receive, send)
            return
        presented = self._presented(scope)
        # compare every presented value, so timing does not tell which header was checked
        ok = False
        for value in presented:
            ok |= hmac.compare_digest(value, self._key)
        if ok:
            await self.app(scope, receive, send)
            return
        message = "invalid API key" if presented else "missing API key (Authorization: Bearer <key>, or X-API-Key)"
        await send_json_error(send, "unauthorized", message, headers=[(b"www-authenticate", b'Bearer realm="pose"')])
