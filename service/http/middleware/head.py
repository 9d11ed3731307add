"""``HEAD`` wherever ``GET`` works: the request is routed as a ``GET`` and its answer keeps the status and headers
(``Content-Length`` included) without the body (RFC 9110, 9.3.2). FastAPI routes answer only the methods they
declare, so without this a monitor's ``HEAD /healthz`` was a 405."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)
