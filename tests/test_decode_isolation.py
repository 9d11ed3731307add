"""Costly decodes run in worker processes that are killed at the decode timeout.

The decode bomb: a flat 4000x3000 progressive JPEG whose last scan is repeated to 95 scans (73 kB, under the
100-scan limit; about 1.3 s to decode at full scale here, and a 5,000-scan file took minutes). With a 0.3 s
timeout it is stopped, the worker process is gone, a fresh one takes its place, and the request slot is free
at once. Before the workers existed the same request kept its slot and a core until the decode ended.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from service.imaging.decode import decode_rgb, open_image
from service.imaging.isolation import ISOLATE_WORK, DecodeStopped, DecodeWorkers, WorkerLost
from tests.helpers.hostile_inputs import scan_bomb
from tests.helpers.server import child_processes

pytestmark = pytest.mark.reliability

PHOTO = Path(__file__).resolve().parent / "data" / "000000000785.jpg"


def decode_bomb(width: int = 4000, height: int = 3000) -> bytes:
    """95 scans (under the 100-scan limit) over ``width`` x ``height`` pixels."""
    return scan_bomb(85, width, height)


def large_progressive_photo() -> bytes:
    """The COCO photo tiled with mirror flips to 4480x3400 (15 megapixels), progressive: a real photo's work."""
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    row = np.concatenate([photo, photo[:, ::-1]] * 4, axis=1)[:, :4480]
    tiled = np.concatenate([row, row[::-1]] * 4, axis=0)[:3400]
    out = io.BytesIO()
    Image.fromarray(tiled).save(out, "JPEG", quality=90, progressive=True)
    return out.getvalue()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" not in status.read_text()


@pytest.fixture
def workers():
    pool = DecodeWorkers(1, timeout_s=0.3, wait_s=5.0)
    yield pool
    pool.close()


def test_a_costly_decode_in_a_worker_gives_the_same_pixels(workers):
    data = large_progressive_photo()
    opened = open_image(data, 50_000_000)
    assert opened.decode_work < ISOLATE_WORK  # an ordinary progressive photo decodes in-thread in the service
    workers.min_work = 0  # here it goes to the worker
    workers.timeout_s = 60.0
    isolated = decode_rgb(opened, (256, 256), 1, None, workers)
    local = decode_rgb(open_image(data, 50_000_000), (256, 256))
    assert isolated.size == local.size == (4480, 3400) and isolated.reduction == local.reduction == 8
    assert np.array_equal(np.asarray(isolated.image), np.asarray(local.image))


def test_a_decode_past_its_timeout_is_killed_and_its_worker_replaced(workers):
    data = decode_bomb()
    opened = open_image(data, 50_000_000)
    assert opened.scans == 95 and opened.decode_work > ISOLATE_WORK
    (before,) = [w.process.pid for w in workers._all]
    start = time.monotonic()
    with pytest.raises(DecodeStopped, match="longer than 0.3 s"):
        decode_rgb(opened, None, 1, None, workers)
    assert time.monotonic() - start < 1.5
    assert not alive(before), "the overrunning worker still runs"
    (after,) = worker_pids(workers, gone=before)
    assert after != before
    workers.timeout_s = 60.0  # the replacement decodes normally
    decoded = decode_rgb(open_image(data, 50_000_000), (256, 256), 1, None, workers)
    assert decoded.size == (4000, 3000) and decoded.image.mode == "RGB"


def test_a_corrupt_image_in_a_worker_is_the_clients_error(workers):
    data = large_progressive_photo()
    workers.timeout_s = 60.0
    with pytest.raises(Exception, match="truncated or corrupt") as raised:
        decode_rgb(open_image(data[: len(data) // 2], 50_000_000), None, 1, None, workers)
    assert type(raised.value).__name__ == "InvalidImage"


def worker_pids(pool: DecodeWorkers, count: int = 1, gone: int | None = None, timeout: float = 10.0) -> list[int]:
    """The pids of the pool's live workers once it has ``count`` of them again (without ``gone``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [w.process.pid for w in list(pool._all)]
        if len(pids) == count and gone not in pids and all(alive(pid) for pid in pids):
            return pids
        time.sleep(0.02)
    raise AssertionError(f"the pool did not get back to {count} live workers")


def zombie(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" in status.read_text()


def test_a_worker_killed_while_idle_is_reaped_and_replaced_before_use(workers):
    """Killed between jobs: reaped at once (no zombie left), replaced, and the next costly image decodes; before,
    the dead worker was handed the next two jobs and each was refused as the client's image_too_complex."""
    (before,) = worker_pids(workers)
    os.kill(before, signal.SIGKILL)
    (after,) = worker_pids(workers, gone=before)
    assert after != before
    time.sleep(0.2)
    assert not zombie(before)
    workers.timeout_s = 60.0
    data = decode_bomb(1200, 900)
    for _ in range(2):
        decoded = decode_rgb(open_image(data, 50_000_000), None, 1, None, workers)
        assert decoded.size == (1200, 900)


def test_a_stopped_idle_worker_is_replaced_before_use(workers):
    """SIGSTOP between jobs: the next job goes to a fresh worker instead of waiting on the stopped one (before, it
    was a 504 at the request timeout)."""
    (before,) = worker_pids(workers)
    os.kill(before, signal.SIGSTOP)
    time.sleep(0.1)
    workers.timeout_s, workers.min_work = 60.0, 0
    decoded = decode_rgb(open_image(PHOTO.read_bytes(), 50_000_000), None, 1, None, workers)
    assert decoded.size == (640, 425)
    worker_pids(workers, gone=before)
    assert not alive(before)


def test_the_hand_off_to_a_stopped_worker_ends_at_its_deadline(workers):
    """Megabytes for a worker that stops reading: the write gives up at the deadline instead of blocking."""
    (worker,) = list(workers._all)
    os.kill(worker.process.pid, signal.SIGSTOP)
    start = time.monotonic()
    taken = worker.send((large_progressive_photo(), None, 1, None, 1), time.monotonic() + 0.5)
    assert not taken and time.monotonic() - start < 1.5


def test_a_worker_stopped_mid_decode_is_the_services_fault(workers):
    (pid,) = worker_pids(workers)
    workers.timeout_s = 1.0
    opened = open_image(decode_bomb(), 50_000_000)
    threading.Timer(0.2, os.kill, (pid, signal.SIGSTOP)).start()
    with pytest.raises(WorkerLost):  # at full scale the bomb takes about 1.3 s: stopped while decoding
        decode_rgb(opened, None, 1, None, workers)


def test_a_worker_lost_is_a_503_to_retry() -> None:
    from service.http.errors import ApiError

    error = ApiError.from_domain(WorkerLost("gone"))
    assert (error.status, error.code) == (503, "decoder_restarted")


@pytest.mark.slow
def test_the_server_is_free_again_as_soon_as_a_decode_bomb_times_out(constant_model_path, start_service):
    """One slot: the bomb (a small person box makes it decode at full scale) gets 422 at the 0.3 s decode
    timeout, and the next request is served at once."""
    server = start_service(
        constant_model_path, max_concurrency=1, max_queue=4, decode_timeout_s=0.3, decode_processes=1
    )
    bomb = decode_bomb()
    good = PHOTO.read_bytes()
    with server.client(timeout=30.0) as client:
        start = time.monotonic()
        answer = client.post(
            "/predict", params={"bbox": "100,100,80,120"}, content=bomb, headers={"content-type": "image/jpeg"}
        )
        refused_after = time.monotonic() - start
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "image_too_complex", answer.text
        start = time.monotonic()
        assert client.post("/predict", content=good, headers={"content-type": "image/jpeg"}).status_code == 200
        served_after = time.monotonic() - start
    assert refused_after < 2.0, refused_after
    assert served_after < 1.0, served_after


@pytest.mark.slow
def test_sigterm_during_a_stuck_decode_exits_in_time_and_leaves_no_worker(constant_model_path, start_service):
    """A decode allowed a minute is running when SIGTERM comes: the server answers it 503 or cancels it at the
    1 s shutdown timeout, exits, and its decode workers (the busy one included) are gone."""
    server = start_service(constant_model_path, decode_timeout_s=60, shutdown_timeout_s=1, decode_processes=1)
    children = child_processes(server.process.pid)
    assert children, "no decode worker was started"
    bomb = decode_bomb(6000, 4000)
    sender = threading.Thread(
        target=lambda: httpx.post(
            server.url + "/predict",
            params={"bbox": "100,100,80,120"},
            content=bomb,
            headers={"content-type": "image/jpeg"},
            timeout=30,
        ),
        daemon=True,
    )
    sender.start()
    time.sleep(0.5)  # the decode is under way in the worker
    start = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(15)
    exited_after = time.monotonic() - start
    deadline = time.monotonic() + 3
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert exited_after < 4.0, exited_after
    assert not any(alive(pid) for pid in children), "a decode worker outlived the server"
