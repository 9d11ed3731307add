"""The CPU image, built and run through ``docker-compose.cpu.yml`` as the README's commands do (every setting the
compose file's default but the request timeout, 120 s: the memory scenario's requests take longer on 2 cores).

The tests run in file order on one compose project (``cpu_stack``); the last one stops it.
"""

from __future__ import annotations

import re
import threading
import time
from urllib.parse import urljoin

import httpx
import pytest

from service.imaging.decode import open_image
from service.settings import Settings
from tests.helpers import containers
from tests.helpers.capacity import memory_ceiling
from tests.helpers.images import padded_png
from tests.helpers.server import REPO_ROOT

MB = 1_000_000
COCO_IMAGE = REPO_ROOT / "tests" / "data" / "000000000785.jpg"
#: the issue's bound for the CPU image (Debian bookworm + the serving lock + both models)
CPU_IMAGE_MAX_BYTES = 600 * MB


def test_the_image_is_small_and_comes_up_ready(cpu_stack):
    size = containers.image_size("hourglass-serve:cpu")
    assert size <= CPU_IMAGE_MAX_BYTES, f"hourglass-serve:cpu is {size / MB:.0f} MB"
    seconds = containers.wait_ready(cpu_stack.url, cpu_stack.container)
    print(f"hourglass-serve:cpu {size / MB:.0f} MB, ready {seconds:.1f} s after `up -d` returned")


def without_timings(answer: dict) -> dict:
    return {key: value for key, value in answer.items() if key != "timings_ms"}


def test_predict_answers_as_the_service_outside_the_container(cpu_stack, start_service):
    photo = COCO_IMAGE.read_bytes()
    with httpx.Client(base_url=cpu_stack.url, timeout=60) as client:
        inside = client.post("/predict", files={"file": ("785.jpg", photo, "image/jpeg")})
    assert inside.status_code == 200, inside.text
    # the same settings as the image: the shipped model and detector, every thread the machine offers
    outside_server = start_service(
        REPO_ROOT / "weights" / "default.onnx",
        detector_path=REPO_ROOT / "weights" / "person_detector.onnx",
        intra_op_threads=0,
        providers="cpu",
    )
    with outside_server.client(timeout=60) as client:
        outside = client.post("/predict", files={"file": ("785.jpg", photo, "image/jpeg")})
    assert outside.status_code == 200, outside.text
    assert without_timings(inside.json()) == without_timings(outside.json())
    assert len(inside.json()["people"]) >= 1


def local_assets(html: str) -> list[str]:
    """The page's src/href targets, but data: URIs; each must be on this server (no host, no scheme)."""
    targets = [t for t in re.findall(r'(?:src|href)="([^"]+)"', html) if not t.startswith("data:")]
    assert not [t for t in targets if re.match(r"^(?:[a-z]+:)?//", t)], targets
    return targets


@pytest.mark.parametrize("page", ["/", "/docs"])
def test_pages_load_everything_from_the_container(cpu_stack, page):
    with httpx.Client(base_url=cpu_stack.url, timeout=30) as client:
        response = client.get(page)
        assert response.status_code == 200
        assets = local_assets(response.text)
        assert assets
        for asset in assets:
            assert client.get(urljoin(cpu_stack.url + page, asset)).status_code == 200, asset
        assert client.get("/openapi.json").status_code == 200


def test_healthcheck_reaches_healthy(cpu_stack):
    """The compose file's healthcheck (first run 30 s after start) calls /healthz from inside the container."""
    assert containers.wait_health(cpu_stack.container) == "healthy"


def test_runs_as_non_root_on_a_read_only_root(cpu_stack):
    container = cpu_stack.container
    assert containers.exec_in(container, "id", "-u").stdout.strip() == "10001"
    host = containers.inspect(container)["HostConfig"]
    assert host["ReadonlyRootfs"] is True and "ALL" in host["CapDrop"]
    refused = containers.exec_in(container, "touch", "/app/written", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    assert containers.exec_in(container, "touch", "/tmp/written").returncode == 0  # the tmpfs


@pytest.mark.timeout(900)
def test_worst_case_load_stays_under_the_memory_limit(cpu_stack):
    """The memory-ceiling scenario at the compose file's own limits: every slot busy with a full batch of
    upload-limit PNGs, the first two of each batch costly enough that two decodes at once (two decode workers) fill
    the decode budget; the rest cheap to decode, so that the scenario fits the stack's request timeout."""
    settings = Settings(detector_path=str(REPO_ROOT / "weights" / "person_detector.onnx"))
    costly = padded_png(4900, settings.max_upload_bytes - 1000)
    decode = open_image(costly, settings.max_pixels).decode_bytes
    budget = settings.decode_memory_mb * MB
    assert 0.4 * budget < decode <= 0.5 * budget, decode
    cheap = padded_png(800, settings.max_upload_bytes - 1000)
    bodies = [costly, costly] + [cheap] * (settings.max_files - 2)
    files = [("files", (f"{i}.png", body, "image/png")) for i, body in enumerate(bodies)]
    statuses: list[int] = []

    def post() -> None:
        with httpx.Client(base_url=cpu_stack.url, timeout=600) as client:
            statuses.append(client.post("/predict/batch", files=files).status_code)

    threads = [threading.Thread(target=post) for _ in range(settings.max_concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    peak, limit = containers.memory_peak(cpu_stack.container), containers.memory_limit(cpu_stack.container)
    state = containers.inspect(cpu_stack.container)["State"]
    ceiling = memory_ceiling(settings).total
    print(f"peak {peak / MB:.0f} MB (cgroup), stated ceiling {ceiling / MB:.0f} MB, mem_limit {limit / MB:.0f} MB")
    assert statuses == [200] * settings.max_concurrency, statuses
    assert not state["OOMKilled"] and state["Running"]
    assert peak < limit


def test_docker_stop_drains_a_request_in_flight(cpu_stack):
    """`compose stop` sends SIGTERM: the request in flight is answered, the server exits 0 within its shutdown
    timeout (POSE_SHUTDOWN_TIMEOUT_S, 20 s), well inside compose's stop_grace_period (30 s)."""
    photo = COCO_IMAGE.read_bytes()
    files = [("files", (f"{i}.jpg", photo, "image/jpeg")) for i in range(16)]
    answer: list[httpx.Response] = []

    def post() -> None:
        with httpx.Client(base_url=cpu_stack.url, timeout=60) as client:
            answer.append(client.post("/predict/batch", params={"flip": "true"}, files=files))

    thread = threading.Thread(target=post)
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive(), "the request finished before the stop: nothing was in flight"
    start = time.monotonic()
    cpu_stack("stop")
    stopped = time.monotonic() - start
    thread.join(60)
    state = containers.inspect(cpu_stack.container)["State"]
    print(f"stopped in {stopped:.1f} s")
    assert answer and answer[0].status_code == 200, answer and answer[0].text
    assert len(answer[0].json()) == 16
    assert state["ExitCode"] == 0 and not state["OOMKilled"]
    assert stopped < Settings().shutdown_timeout_s
