"""Dynamic batching: concurrent requests share one session call (Triton's dynamic batcher, in small).

Each request is an ``(n, 3, H, W)`` array. A worker task takes the oldest waiting request, then
collects more until the batch holds ``max_batch_size`` images or ``timeout_ms`` have passed since
that first request *arrived* (requests that queued up while the previous batch ran go out at once).
Only requests of the same per-image shape are batched together; a request larger than
``max_batch_size`` runs alone, unsplit. The model call runs in a thread, off the event loop, and the
output rows are split back to each request's future.

The queue is bounded (in images): a full queue raises :class:`Overloaded`. A request
cancelled while it waits leaves the queue at once; one cancelled while its batch runs just has its
rows dropped. :meth:`DynamicBatcher.close` stops accepting, finishes what is queued (within a
grace period) and fails whatever is left with :class:`ShuttingDown`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Self

import numpy as np

from pose.errors import PoseError
from service.inference.runtime import GPU_PROVIDERS

RunFn = Callable[[np.ndarray], np.ndarray]


class Overloaded(PoseError):
    """More images waiting than the queue allows: try again shortly."""


class ShuttingDown(PoseError):
    """The batcher is shutting down or was never started."""


@dataclass(eq=False)
class _Request:
    images: np.ndarray
    future: asyncio.Future[np.ndarray]
    arrived: float = field(default_factory=time.monotonic)

    @property
    def size(self) -> int:
        return int(self.images.shape[0])

    @property
    def item_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])


class DynamicBatcher:
    """Queue requests and run them in batches through ``run`` (a blocking ``(N, ...) -> (N, ...)`` call)."""

    def __init__(
        self,
        run: RunFn,
        max_batch_size: int = 8,
        timeout_ms: float = 2.0,
        max_queue: int = 256,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if timeout_ms < 0:
            raise ValueError(f"timeout_ms must not be negative, got {timeout_ms}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self.run = run
        self.max_batch_size = int(max_batch_size)
        self.timeout_s = float(timeout_ms) / 1000.0
        self.max_queue = int(max_queue)
        self.batches_run = 0
        self._queue: deque[_Request] = deque()
        self._queued_images = 0
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    @property
    def queued_images(self) -> int:
        return self._queued_images

    async def start(self) -> None:
        """Start the worker on the running event loop."""
        if self.running:
            return
        self._closing = False
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batcher")
        self._worker = asyncio.create_task(self._work(self._wakeup), name="dynamic-batcher")

    async def close(self, grace_s: float = 10.0) -> None:
        """Stop accepting, finish queued requests for up to ``grace_s``, fail the rest."""
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._worker is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._worker), grace_s)
            except TimeoutError:
                self._worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._worker
        self._fail_queued(ShuttingDown("the service is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._worker = self._executor = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ submit
    async def submit(self, images: np.ndarray) -> np.ndarray:
        """Run ``images`` ``(n, ...)`` as part of a batch; returns this request's ``n`` output rows."""
        if images.ndim < 1 or images.shape[0] < 1:
            raise ValueError(f"expected a non-empty (n, ...) array, got shape {images.shape}")
        if self._closing or not self.running or self._wakeup is None:
            raise ShuttingDown("the inference queue is not running")
        n = int(images.shape[0])
        if self._queued_images + n > self.max_queue:
            raise Overloaded(
                f"inference queue full ({self._queued_images} images waiting, limit {self.max_queue}); retry later"
            )
        request = _Request(images, asyncio.get_running_loop().create_future())
        self._queue.append(request)
        self._queued_images += n
        self._wakeup.set()
        try:
            return await request.future
        except asyncio.CancelledError:
            self._discard(request)
            raise

    def _discard(self, request: _Request) -> None:
        """Drop a cancelled request that is still waiting, freeing its queue slots."""
        with contextlib.suppress(ValueError):
            self._queue.remove(request)
            self._queued_images -= request.size

    def _fail_queued(self, error: Exception) -> None:
        _fail(self._queue, error)
        self._queue.clear()
        self._queued_images = 0

    # ------------------------------------------------------------------ worker
    async def _work(self, wakeup: asyncio.Event) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                wakeup.clear()
                await wakeup.wait()
                continue
            batch = await self._collect(wakeup)
            if batch:
                await self._dispatch(batch)

    def _pop_compatible(self, shape: tuple[int, ...], room: int) -> _Request | None:
        """Take the oldest waiting request with this item shape that fits in ``room`` images."""
        for request in self._queue:
            if request.item_shape == shape and request.size <= room:
                self._queue.remove(request)
                self._queued_images -= request.size
                return request
        return None

    async def _collect(self, wakeup: asyncio.Event) -> list[_Request]:
        """Form one batch: the oldest request plus whatever joins before it is full or due."""
        first = self._queue.popleft()
        self._queued_images -= first.size
        batch, count = [first], first.size
        deadline = first.arrived + self.timeout_s
        while count < self.max_batch_size:
            nxt = self._pop_compatible(first.item_shape, self.max_batch_size - count)
            if nxt is not None:
                batch.append(nxt)
                count += nxt.size
                continue
            if self._closing:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), remaining)
        return [r for r in batch if not r.future.done()]

    async def _dispatch(self, batch: list[_Request]) -> None:
        images = batch[0].images if len(batch) == 1 else np.concatenate([r.images for r in batch])
        loop = asyncio.get_running_loop()
        try:
            outputs = await loop.run_in_executor(self._executor, self.run, images)
            if outputs.shape[0] != images.shape[0]:
                raise RuntimeError(f"model returned {outputs.shape[0]} rows for a batch of {images.shape[0]}")
        except asyncio.CancelledError:  # close() gave up waiting: nobody may hang on this batch
            _fail(batch, ShuttingDown("the service shut down while this request ran"))
            raise
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the failure
            _fail(batch, exc)
            return
        finally:
            self.batches_run += 1
        start = 0
        for request in batch:
            rows = outputs[start : start + request.size]
            start += request.size
            if not request.future.done():
                request.future.set_result(rows)


def _fail(requests: Iterable[_Request], error: BaseException) -> None:
    for request in requests:
        if not request.future.done():
            request.future.set_exception(error)


GPU_DEFAULT_MAX_BATCH = 8  # batching pays on a GPU: one launch for many images
CPU_DEFAULT_MAX_BATCH = 1  # off: on CPU a batch costs about as much per image as single runs (bench/batching.py)


def default_max_batch_size(providers: Iterable[str]) -> int:
    """``POSE_BATCH_MAX_SIZE`` when unset: on for a GPU provider, off on CPU."""
    return GPU_DEFAULT_MAX_BATCH if GPU_PROVIDERS & set(providers) else CPU_DEFAULT_MAX_BATCH


def batcher_for(
    max_batch_size: int | None,
    timeout_ms: float,
    max_queue: int,
    providers: Iterable[str],
    run: RunFn,
) -> DynamicBatcher | None:
    """The batcher the settings ask for, or None when batching is off (max batch size 1)."""
    size = default_max_batch_size(providers) if max_batch_size is None else max_batch_size
    if size <= 1:
        return None
    return DynamicBatcher(run, max_batch_size=size, timeout_ms=timeout_ms, max_queue=max_queue)
