"""The Docker engine and compose, driven from tests (``make docker-test``): build, run, inspect, wait, stop.

``scripts/docker_test.sh`` prepares the machine (engine, base images) and passes what it found in the environment:
``DOCKER`` (the client), ``COMPOSE`` (the compose command, ``docker compose`` or docker-compose v1), and
``PYTHON_IMAGE`` / ``BUILD_IMAGE`` (the bases, when Docker Hub's cannot be pulled).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import httpx

from tests.helpers.server import REPO_ROOT, free_port

DOCKER = os.environ.get("DOCKER", "docker")
COMPOSE = shlex.split(os.environ.get("COMPOSE", "docker compose"))
#: build arguments for the bases (empty where the Dockerfiles' public defaults can be pulled)
BASE_ARGS = {key: os.environ[key] for key in ("PYTHON_IMAGE", "BUILD_IMAGE") if os.environ.get(key)}


class ImageCheckFailed(AssertionError):
    """An image did not build, start or behave as it must; the message carries the evidence."""


def run(
    args: list[str],
    timeout: float = 600,
    check: bool = True,
    extra_env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess:
    """Run a command with the bases' build arguments in its environment; ``check``: raise ImageCheckFailed with its
    output when it fails."""
    env = {**os.environ, "DOCKER_BUILDKIT": "1", "COMPOSE_DOCKER_CLI_BUILD": "1", **BASE_ARGS, **(extra_env or {})}
    result = subprocess.run(
        args, cwd=REPO_ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise ImageCheckFailed(f"{shlex.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def build(dockerfile: Path, tag: str, *build_args: str, timeout: float = 1200) -> None:
    """``docker build`` (BuildKit) of ``dockerfile`` with the repository as context."""
    args = [DOCKER, "build", "-f", str(dockerfile), "-t", tag]
    for key, value in BASE_ARGS.items():
        args += ["--build-arg", f"{key}={value}"]
    for value in build_args:
        args += ["--build-arg", value]
    run([*args, str(REPO_ROOT)], timeout=timeout)


def inspect(name: str) -> dict:
    """``docker inspect`` of a container or image."""
    return json.loads(run([DOCKER, "inspect", name]).stdout)[0]


def image_size(tag: str) -> int:
    """The image's size in bytes, as ``docker image ls`` counts it."""
    return int(inspect(tag)["Size"])


def remove_image(tag: str) -> None:
    run([DOCKER, "rmi", "-f", tag], check=False)


def logs(container: str) -> str:
    result = run([DOCKER, "logs", container], check=False)
    return result.stdout + result.stderr


def exec_in(container: str, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([DOCKER, "exec", container, *command], check=check, timeout=60)


def wait_ready(url: str, container: str, timeout: float = 90.0) -> float:
    """Seconds until ``url/readyz`` answers 200; ImageCheckFailed with the logs if the container stops first."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        state = inspect(container)["State"]
        if not state["Running"]:
            raise ImageCheckFailed(f"{container} exited with {state['ExitCode']}:\n{logs(container)}")
        try:
            if httpx.get(url + "/readyz", timeout=2.0).status_code == 200:
                return time.monotonic() - start
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise ImageCheckFailed(f"{url}/readyz not ready within {timeout} s:\n{logs(container)}")


def wait_health(container: str, timeout: float = 120.0) -> str:
    """The container's HEALTHCHECK status once it leaves ``starting`` (or ``starting`` at the timeout)."""
    deadline = time.monotonic() + timeout
    status = "starting"
    while time.monotonic() < deadline:
        status = inspect(container)["State"]["Health"]["Status"]
        if status != "starting":
            return status
        time.sleep(1.0)
    return status


def memory_peak(container: str) -> int:
    """The container's peak memory in bytes, from its cgroup (v2 ``memory.peak`` or v1 ``max_usage_in_bytes``)."""
    for path in ("/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes"):
        result = exec_in(container, "cat", path, check=False)
        if result.returncode == 0:
            return int(result.stdout)
    raise ImageCheckFailed(f"no cgroup memory peak readable in {container}")


def memory_limit(container: str) -> int:
    return int(inspect(container)["HostConfig"]["Memory"])


class Container:
    """``docker run -d`` of an image the way the compose files run it (read-only root, a small /tmp), published on a
    free 127.0.0.1 port; removed on exit."""

    def __init__(self, image: str, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.image, self.options, self.id = image, options, ""

    def __enter__(self) -> Container:
        args = [DOCKER, "run", "-d", "--read-only", "--tmpfs", "/tmp:size=64m", "-p", f"127.0.0.1:{self.port}:8000"]
        self.id = run([*args, *self.options, self.image]).stdout.strip()
        return self

    def __exit__(self, *exc: object) -> None:
        run([DOCKER, "rm", "-f", self.id], check=False)


#: run inside the GPU image: every library of ONNX Runtime's CUDA provider and of NVIDIA's wheels, as the dynamic
#: loader resolves them (``ldd``), the libraries loaded by name at run time, and the providers ONNX Runtime offers
CUDA_LIBRARY_CHECK = """
import ctypes, glob, json, os, subprocess
import onnxruntime as ort
capi = os.path.join(os.path.dirname(ort.__file__), "capi")
site = os.path.dirname(os.path.dirname(ort.__file__))
libs = [os.path.join(capi, "libonnxruntime_providers_cuda.so")]
libs += sorted(glob.glob(os.path.join(site, "nvidia", "**", "lib*.so*"), recursive=True))
missing = {}
for lib in libs:
    for line in subprocess.run(["ldd", lib], capture_output=True, text=True).stdout.splitlines():
        if "not found" in line:
            missing.setdefault(line.split()[0], []).append(os.path.basename(lib))
by_name = {}
for soname in ("libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libcufft.so.12",
               "libnvrtc.so.13", "libcudnn.so.9"):
    try:
        ctypes.CDLL(soname)
        by_name[soname] = "ok"
    except OSError as error:
        by_name[soname] = str(error)
print(json.dumps({"libraries": len(libs), "missing": missing, "by_name": by_name,
                  "providers": ort.get_available_providers()}))
"""


def check_cuda_libraries(image: str) -> dict:
    """Run :data:`CUDA_LIBRARY_CHECK` in ``image``; ImageCheckFailed unless every library resolves but the driver's
    ``libcuda.so.1`` (the NVIDIA Container Toolkit mounts it from the host) and CUDAExecutionProvider is offered."""
    result = run([DOCKER, "run", "--rm", "-i", "--entrypoint", "python", image, "-"], stdin=CUDA_LIBRARY_CHECK)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    unresolved = set(report["missing"]) - {"libcuda.so.1"}
    unloadable = {name: error for name, error in report["by_name"].items() if error != "ok"}
    if unresolved or unloadable or "CUDAExecutionProvider" not in report["providers"]:
        raise ImageCheckFailed(f"{image}: CUDA libraries do not resolve: {json.dumps(report, indent=1)}")
    return report
