"""The GPU image: built on a plain Python base with NVIDIA's CUDA and cuDNN wheels (no CUDA base image).

No GPU here: the check is that every library of ONNX Runtime's CUDA provider resolves in the image but the driver's
``libcuda.so.1``, which the NVIDIA Container Toolkit mounts from the host, and that the image still serves on a host
without one (ONNX Runtime falls back to its CPU provider, and says why in the log).
"""

from __future__ import annotations

import httpx

from tests.helpers import containers
from tests.helpers.server import REPO_ROOT

GB = 1_000_000_000


def test_cuda_provider_libraries_resolve_but_the_driver(gpu_image):
    report = containers.check_cuda_libraries(gpu_image)
    size = containers.image_size(gpu_image)
    print(f"{gpu_image}: {size / GB:.2f} GB; {report['libraries']} libraries checked; providers {report['providers']}")
    assert set(report["missing"]) == {"libcuda.so.1"}


def test_serves_on_a_host_without_a_gpu(gpu_image):
    photo = (REPO_ROOT / "tests" / "data" / "000000000785.jpg").read_bytes()
    with containers.Container(gpu_image) as container:
        containers.wait_ready(container.url, container.id)
        answer = httpx.post(container.url + "/predict", files={"file": ("785.jpg", photo)}, timeout=60)
        log = containers.logs(container.id)
    assert answer.status_code == 200 and answer.json()["people"], answer.text
    # the CUDA provider was tried, and the one thing it lacked was the driver
    assert "libcuda.so.1: cannot open shared object file" in log
    assert "providers CPUExecutionProvider" in log
