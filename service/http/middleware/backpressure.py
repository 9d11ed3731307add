"""Back-pressure: a bounded number of prediction requests in flight and waiting, each with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.middleware.responses import send_json_error

PREDICTION_PATH_PREFIX = "/predict"
DRAIN_POLL_S = 0.05  # how often a request waiting for a slot checks whether the service is draining


class Backpressure:
    """At most ``max_concurrency`` prediction requests in flight and ``max_queue`` waiting for a slot.

    Past that: an immediate 503 with ``Retry-After``. Each request has ``timeout_s`` from arrival (queueing
    included); past it the client gets a 504 at once and the request's work is cancelled. Once ``draining()``
    is true (SIGTERM), requests still waiting for a slot, and any that arrive, get a 503 with ``Retry-After`` at
    once (a client can retry elsewhere), while those holding a slot finish. The slot comes back
    when the cancelled work has stopped: at once for a request still reading its upload or waiting on the
    batcher, after the current ONNX Runtime call for one inside it (that call cannot be interrupted), so the
    CPU is never oversubscribed. Only paths starting with ``path_prefix`` are limited.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_concurrency: int,
        max_queue: int,
        timeout_s: float,
        path_prefix: str = PREDICTION_PATH_PREFIX,
        draining: Callable[[], bool] = lambda: False,
    ) -> None:
        if max_concurrency < 1 or max_queue < 0 or timeout_s <= 0:
            raise ValueError("need max_concurrency >= 1, max_queue >= 0 and timeout_s > 0")
        self.app = app
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.path_prefix = path_prefix
        self.draining = draining
        self.in_flight = 0
        self.waiting = 0
        self._free = asyncio.Semaphore(max_concurrency)

    def _limited(self, scope: Scope) -> bool:
        path = scope.get("path", "")
        return scope["type"] == "http" and (path == self.path_prefix or path.startswith(self.path_prefix + "/"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._limited(scope):
            await self.app(scope, receive, send)
            return
        if self.draining():
            await self._refuse(send, "shutting_down", "the service is shutting down; retry elsewhere")
            return
        if self.in_flight >= self.max_concurrency and self.waiting >= self.max_queue:
            await self._refuse(send, "overloaded", "too many requests in flight; retry later")
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        self.waiting += 1
        try:
            async with asyncio.timeout_at(deadline):
                admitted = await self._wait_for_slot()
        except TimeoutError:
            await self._timed_out(send)
            return
        finally:
            self.waiting -= 1
        if not admitted:
            await self._refuse(send, "shutting_down", "the service is shutting down; retry elsewhere")
            return
        self.in_flight += 1
        await self._run(scope, receive, send, deadline)

    async def _wait_for_slot(self) -> bool:
        """Take a slot (True), or give up once the service drains (False); the caller bounds the wait."""
        acquire = asyncio.ensure_future(self._free.acquire())
        granted = False
        try:
            while not granted:
                done, _ = await asyncio.wait({acquire}, timeout=DRAIN_POLL_S)
                if done:
                    granted = True
                elif self.draining():
                    return False
            return True
        finally:
            if not granted:
                if acquire.done() and not acquire.cancelled():
                    self._free.release()  # granted just as the wait ended: hand the slot back
                else:
                    acquire.cancel()

    async def _refuse(self, send: Send, code: str, message: str) -> None:
        await send_json_error(send, code, message)

    def _release(self, _: object = None) -> None:
        self.in_flight -= 1
        self._free.release()

    async def _run(self, scope: Scope, receive: Receive, send: Send, deadline: float) -> None:
        started = False
        cut_off = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if cut_off:  # the client already got its 504
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        try:
            done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - asyncio.get_running_loop().time()))
        except BaseException:  # we were cancelled ourselves (shutdown timeout): stop the work too
            task.cancel()
            task.add_done_callback(_consume)
            task.add_done_callback(self._release)
            raise
        if done:
            self._release()
            task.result()  # re-raise the app's exception, if any
            return
        cut_off = True
        task.cancel()
        task.add_done_callback(_consume)
        task.add_done_callback(self._release)
        if not started:
            await self._timed_out(send)

    async def _timed_out(self, send: Send) -> None:
        await send_json_error(send, "timeout", f"the request took longer than {self.timeout_s:g} s")


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve a cancelled task's outcome so asyncio does not warn about it."""
    if not task.cancelled():
        task.exception()
