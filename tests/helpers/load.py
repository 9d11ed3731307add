"""Closed-loop HTTP load against a live server, with the server's resident memory sampled throughout."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import psutil

from tests.helpers.server import ServiceProcess


@dataclass
class LoadResult:
    statuses: Counter = field(default_factory=Counter)
    missing_retry_after: int = 0
    wrong_error_code: int = 0
    transport_errors: int = 0
    peak_rss: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + self.transport_errors

    def latency_ms(self, quantile: float) -> float:
        """Latency of the successful requests at ``quantile`` (0..1), in ms."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000.0 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


async def _client(client: httpx.AsyncClient, image: bytes, stop_at: float, result: LoadResult) -> None:
    headers = {"content-type": "image/jpeg"}
    while time.monotonic() < stop_at:
        start = time.monotonic()
        try:
            response = await client.post("/predict", content=image, headers=headers)
        except httpx.HTTPError:
            result.transport_errors += 1
            continue
        result.statuses[response.status_code] += 1
        if response.status_code == 200:
            result.latencies.append(time.monotonic() - start)
        elif response.status_code == 503:
            if not response.headers.get("retry-after", "").isdigit():
                result.missing_retry_after += 1
            if response.json()["error"]["code"] != "overloaded":
                result.wrong_error_code += 1
            await asyncio.sleep(0.02)  # a polite client would wait Retry-After; this one only pauses


async def _load(url: str, image: bytes, clients: int, duration: float, result: LoadResult) -> None:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        stop_at = time.monotonic() + duration
        await asyncio.gather(*(_client(client, image, stop_at, result) for _ in range(clients)))


def run_load(server: ServiceProcess, image: bytes, clients: int, duration: float) -> LoadResult:
    """``clients`` concurrent clients posting ``image`` (JPEG) for ``duration`` seconds."""
    if server.process is None:
        raise RuntimeError("the server is not running")
    proc = psutil.Process(server.process.pid)
    result = LoadResult()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            result.peak_rss = max(result.peak_rss, proc.memory_info().rss)
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        asyncio.run(_load(server.url, image, clients, duration, result))
    finally:
        done.set()
        sampler.join()
    return result


def in_flight(server: ServiceProcess) -> float:
    """Requests the server is serving now, from its metrics (not counting the metrics request)."""
    with server.client() as client:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith("pose_http_requests_in_flight "):
                return float(line.split()[1]) - 1
    raise RuntimeError("no pose_http_requests_in_flight gauge in /metrics")


def wait_in_flight(server: ServiceProcess, count: int, timeout: float = 30.0) -> None:
    """Return once the server has at least ``count`` requests in flight."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if in_flight(server) >= count:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{count} requests were not in flight within {timeout} s")
