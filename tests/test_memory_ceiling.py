"""The worst case the README states holds: the server's peak RSS under the worst inputs stays under
``tests.helpers.capacity.memory_ceiling`` of its settings (test_packaging checks that the ceiling at the compose
files' settings fits their memory limit).

The worst inputs, at small settings so that CI can afford them: every slot busy with a full batch request
(``POSE_MAX_FILES`` files of ``POSE_MAX_UPLOAD_BYTES`` each, with ``flip``), every file a 16-bit PNG that costs
nearly the largest decode one image may have, padded to the upload limit with a private PNG chunk.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from service.imaging.decode import open_image
from service.settings import Settings
from tests.helpers.capacity import memory_ceiling
from tests.helpers.images import padded_png
from tests.helpers.server import REPO_ROOT, child_processes, peak_rss

pytestmark = pytest.mark.reliability

MB = 1_000_000
LIMITS = {
    "max_concurrency": 4,
    "max_files": 3,
    "max_upload_bytes": 3 * MB,
    "decode_memory_mb": 150,
    "max_pixels": 12_000_000,
    "request_timeout_s": 120,
}


def peak_rss_with_children(pid: int) -> int:
    """Peak RSS of the process plus its children's (the decode workers)."""
    return peak_rss(pid) + sum(peak_rss_with_children(child) for child in child_processes(pid))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_worst_inputs_stay_under_the_stated_ceiling(start_service):
    body = padded_png(3000, LIMITS["max_upload_bytes"] - 1000)
    decode = open_image(body, LIMITS["max_pixels"]).decode_bytes
    assert 0.6 * LIMITS["decode_memory_mb"] * MB < decode <= LIMITS["decode_memory_mb"] * MB  # near the most
    server = start_service(REPO_ROOT / "weights" / "default.onnx", **LIMITS)
    baseline = peak_rss(server.process.pid)  # the server alone: the ceiling adds its decode workers
    files = [("files", (f"{i}.png", body, "image/png")) for i in range(LIMITS["max_files"])]
    with server.client(timeout=120.0) as client:

        def post(_: int) -> int:
            return client.post("/predict/batch", params={"flip": "true"}, files=files).status_code

        with ThreadPoolExecutor(LIMITS["max_concurrency"]) as pool:
            statuses = list(pool.map(post, range(2 * LIMITS["max_concurrency"])))
        assert statuses == [200] * len(statuses), statuses
    peak = peak_rss_with_children(server.process.pid)
    ceiling = memory_ceiling(Settings(**LIMITS), baseline=baseline)
    assert peak <= ceiling.total, f"peak RSS {peak / MB:.0f} MB over the stated ceiling {ceiling.total / MB:.0f} MB"
