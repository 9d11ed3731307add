"""Overload: 64 concurrent clients against a server with small limits, and the per-request deadline.

Every answer under overload must be a 200 or an immediate 503 with ``Retry-After`` (never another 5xx,
never a growing backlog), the server's resident memory must stay under :data:`RSS_BOUND`, and it must
serve normally afterwards.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import fault_models
from tests.helpers import hostile_inputs as corpus
from tests.helpers.load import LoadResult, in_flight, run_load
from tests.helpers.server import ServiceProcess

CLIENTS = 64
DURATION_S = 8.0
LIMITS = {"max_concurrency": 2, "max_queue": 4, "request_timeout_s": 20}
RSS_BOUND = 300 * 2**20  # bytes: the whole server process, model and ONNX Runtime included (idle: about 100 MiB)
IMAGE = corpus.jpeg(320, 240, seed=5)


@pytest.mark.slow
def test_64_clients_get_200_or_503_with_retry_after(constant_model_path: Path) -> None:
    with ServiceProcess(constant_model_path, **LIMITS) as server:
        result = run_load(server, IMAGE, CLIENTS, DURATION_S)
        assert set(result.statuses) <= {200, 503}, result.statuses
        assert result.statuses[200] > 0
        assert result.statuses[503] > 0, "the limits never engaged"
        assert result.missing_retry_after == 0
        assert result.wrong_error_code == 0
        assert result.transport_errors == 0
        assert result.peak_rss < RSS_BOUND, f"peak RSS {result.peak_rss / 2**20:.0f} MiB"
        # normal service afterwards, nothing left in flight
        with server.client() as client:
            for _ in range(10):
                response = client.post("/predict", content=IMAGE, headers={"content-type": "image/jpeg"})
                assert response.status_code == 200
            assert client.get("/readyz").status_code == 200
        assert in_flight(server) == 0


def test_request_timeout_is_504_and_frees_the_slot(tmp_path: Path) -> None:
    """A prediction running past POSE_REQUEST_TIMEOUT_S: 504 at the deadline, and the slot comes back."""
    model = fault_models.write_model(tmp_path / "slow.onnx", "slow", slow_iterations=150)
    with ServiceProcess(model, max_concurrency=1, max_queue=0, request_timeout_s=0.5) as server:
        with server.client() as client:
            start = time.monotonic()
            slow = client.post("/predict", content=fault_models.green_png(), headers={"content-type": "image/png"})
            waited = time.monotonic() - start
            assert slow.status_code == 504, slow.text
            assert slow.json()["error"]["code"] == "timeout"
            assert waited < 1.5
            statuses = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                ok = client.post("/predict", content=fault_models.grey_png(), headers={"content-type": "image/png"})
                statuses.append(ok.status_code)
                if ok.status_code == 200:
                    break
                time.sleep(0.2)
        assert statuses[-1] == 200, statuses
        assert set(statuses) <= {200, 503, 504}
        assert in_flight(server) == 0


def test_slow_upload_holding_a_slot_times_out_and_others_get_503(constant_model_path: Path) -> None:
    """A client trickling its upload occupies the only slot: others get an immediate 503 until its 504."""
    with ServiceProcess(constant_model_path, max_concurrency=1, max_queue=0, request_timeout_s=1.5) as server:
        head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n"
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as slowloris:
            slowloris.sendall(head + b"\xff\xd8")
            time.sleep(0.3)
            with server.client() as client:
                start = time.monotonic()
                busy = client.post("/predict", content=IMAGE, headers={"content-type": "image/jpeg"})
                assert busy.status_code == 503
                assert busy.headers["retry-after"] == "1"
                assert time.monotonic() - start < 1.0  # immediate, not queued
                assert client.get("/healthz").status_code == 200  # health is never limited
            answer = slowloris.recv(4096)
        assert answer.startswith(b"HTTP/1.1 504"), answer[:200]
        with server.client() as client:
            response = client.post("/predict", content=IMAGE, headers={"content-type": "image/jpeg"})
            assert response.status_code == 200


def test_full_batcher_queue_is_503_with_retry_after(tmp_path: Path) -> None:
    """With dynamic batching on, a full batch queue answers like the back-pressure limit: 503 + Retry-After."""
    model = fault_models.write_model(tmp_path / "slow.onnx", "slow", slow_iterations=60)
    settings = {"batch_max_size": 2, "batch_max_queue": 1, "max_concurrency": 16, "max_queue": 0}
    with ServiceProcess(model, **settings) as server:
        result = LoadResult()

        async def burst() -> None:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:

                async def one() -> None:
                    response = await client.post(
                        "/predict", content=fault_models.green_png(), headers={"content-type": "image/png"}
                    )
                    result.statuses[response.status_code] += 1
                    if response.status_code == 503 and not response.headers.get("retry-after", "").isdigit():
                        result.missing_retry_after += 1

                await asyncio.gather(*(one() for _ in range(8)))

        asyncio.run(burst())
        assert set(result.statuses) <= {200, 503}, result.statuses
        assert result.statuses[503] > 0
        assert result.statuses[200] > 0
        assert result.missing_retry_after == 0
        with server.client() as client:
            ok = client.post("/predict", content=fault_models.grey_png(), headers={"content-type": "image/png"})
            assert ok.status_code == 200
