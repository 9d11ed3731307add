"""The image checks fail on broken images: each test builds a deliberately broken variant of a Dockerfile and
expects the check that passes on the real one to raise ImageCheckFailed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import containers
from tests.helpers.server import REPO_ROOT


@pytest.fixture
def broken_tag() -> Iterator[str]:
    """A tag for a broken image, removed after the test."""
    tag = "hourglass-serve:broken"
    yield tag
    containers.remove_image(tag)


def broken_dockerfile(tmp_path: Path, name: str, drop: str) -> Path:
    """``name`` without the instruction whose first line starts with ``drop`` (continuation lines included)."""
    lines = (REPO_ROOT / name).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(drop))
    end = start
    while lines[end].endswith("\\"):
        end += 1
    path = tmp_path / f"{name}.broken"
    path.write_text("\n".join(lines[:start] + lines[end + 1 :]) + "\n")
    return path


def test_a_runtime_stage_missing_a_module_fails_the_start_check(tmp_path, broken_tag):
    dockerfile = broken_dockerfile(tmp_path, "Dockerfile.cpu", "COPY pose/ pose/")
    containers.build(dockerfile, broken_tag)
    container = containers.Container(broken_tag)
    with container, pytest.raises(containers.ImageCheckFailed, match="No module named 'pose'"):
        containers.wait_ready(container.url, container.id, timeout=60)


def test_a_gpu_image_missing_its_library_paths_fails_the_library_check(tmp_path, gpu_image, broken_tag):
    """Without the ld.so.conf.d entry for NVIDIA's wheels, cuBLAS, cuDNN and the CUDA runtime do not resolve."""
    dockerfile = broken_dockerfile(tmp_path, "Dockerfile", "RUN find /opt/venv -path '*/site-packages/nvidia/*'")
    containers.build(dockerfile, broken_tag)
    with pytest.raises(containers.ImageCheckFailed, match="libcublas"):
        containers.check_cuda_libraries(broken_tag)
