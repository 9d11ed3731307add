"""Fixtures for the image tests (``make docker-test``, which prepares the engine and the bases).

Without ``HGS_DOCKER_TEST=1`` (a plain ``make test``) every test here is skipped: it needs a Docker engine.

- ``cpu_stack``: ``docker-compose.cpu.yml`` built and brought up under a project of its own on a free port, exactly
  as the README's commands do (``POSE_REQUEST_TIMEOUT_S=120`` for the memory scenario); taken down (``down -v``) at
  the end of the session.
- ``gpu_image``: the GPU image, built from ``Dockerfile``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import containers
from tests.helpers.server import REPO_ROOT, free_port

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs a Docker engine: run `make docker-test`")
    for item in items:
        if Path(item.path).is_relative_to(HERE):
            item.add_marker(pytest.mark.docker)
            if not os.environ.get("HGS_DOCKER_TEST"):
                item.add_marker(skip)


@dataclass
class ComposeStack:
    """A compose project's ``pose`` service: its URL on the host, its container id, its compose command."""

    url: str
    container: str
    compose: list[str]
    env: dict[str, str]

    def __call__(self, *args: str, timeout: float = 600, check: bool = True):
        return containers.run([*self.compose, *args], timeout=timeout, check=check, extra_env=self.env)


@pytest.fixture(scope="session")
def cpu_stack() -> Iterator[ComposeStack]:
    port = free_port()
    compose = [*containers.COMPOSE, "-f", str(REPO_ROOT / "docker-compose.cpu.yml"), "-p", f"hgs-test-{os.getpid()}"]
    env = {"POSE_PUBLISHED_PORT": str(port), "POSE_REQUEST_TIMEOUT_S": "120"}
    stack = ComposeStack(f"http://127.0.0.1:{port}", "", compose, env)
    try:
        stack("up", "-d", "--build", timeout=1800)  # the README's command
        stack.container = stack("ps", "-q", "pose").stdout.strip()
        yield stack
    finally:
        stack("down", "-v", "--remove-orphans", check=False)


@pytest.fixture(scope="session")
def gpu_image() -> str:
    tag = "hourglass-serve:gpu"
    containers.build(REPO_ROOT / "Dockerfile", tag, timeout=3600)
    return tag
