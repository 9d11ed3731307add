"""Closed-loop HTTP load: N clients over keep-alive connections, each sending its next request on reply."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass

import httpx
import numpy as np

WARMUP_REQUESTS = 8  # untimed requests before measuring (connections, first-call costs)
HARD_STOP_FACTOR = 3.0  # requests still running at HARD_STOP_FACTOR x the duration are abandoned


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    requests: int  # completed within the measurement, successful or not
    errors: int  # non-200 answers and transport errors among them
    abandoned: int  # still running at the hard stop: not counted in requests or latencies
    seconds: float
    rps: float  # successful requests per second
    p50_ms: float | None  # latency of the successful requests
    p95_ms: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


async def _load(
    url: str, files: dict[str, tuple[str, bytes, str]], concurrency: int, seconds: float, max_requests: int
) -> LoadResult:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120.0) as client:

        async def one() -> tuple[float, bool]:
            t0 = time.perf_counter()
            try:
                response = await client.post(url, files=files)
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            return time.perf_counter() - t0, ok

        await asyncio.gather(*(one() for _ in range(min(concurrency, WARMUP_REQUESTS))))
        latencies: list[float] = []  # successful requests only
        completed = errors = issued = 0
        start = time.perf_counter()
        stop_at = start + seconds

        async def client_loop() -> None:
            nonlocal issued, completed, errors
            while time.perf_counter() < stop_at and issued < max_requests:
                issued += 1
                latency, ok = await one()
                completed += 1
                if ok:
                    latencies.append(latency)
                else:
                    errors += 1

        tasks = [asyncio.create_task(client_loop()) for _ in range(concurrency)]
        _, pending = await asyncio.wait(tasks, timeout=seconds * HARD_STOP_FACTOR)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        elapsed = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000.0
    return LoadResult(
        concurrency=concurrency,
        requests=completed,
        errors=errors,
        abandoned=len(pending),
        seconds=round(elapsed, 3),
        rps=round(len(latencies) / elapsed, 2),
        p50_ms=round(float(np.median(ms)), 2) if len(ms) else None,
        p95_ms=round(float(np.percentile(ms, 95)), 2) if len(ms) else None,
    )


def run_load(url: str, image: bytes, concurrency: int, seconds: float, max_requests: int) -> LoadResult:
    """POST ``image`` (multipart field ``file``) to ``url`` from ``concurrency`` clients for about ``seconds``.

    Every client starts a request while time and the ``max_requests`` budget last; requests in flight
    at the deadline are waited for and counted, up to ``HARD_STOP_FACTOR`` times ``seconds`` in all.
    """
    files = {"file": ("image.jpg", image, "image/jpeg")}
    return asyncio.run(_load(url, files, concurrency, seconds, max_requests))
