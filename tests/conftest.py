"""Shared fixtures for the whole suite.

Helpers live in ``tests/helpers`` (importable as ``tests.helpers``):

- ``tests.helpers.models``: tiny ONNX models built with the ``onnx`` helper API, no torch.
  :func:`~tests.helpers.models.constant_model` writes a model whose ``heatmaps`` output is a fixed
  Gaussian per joint at a known sub-pixel heatmap location (input ``image`` ``(N, 3, 256, 256)``,
  dynamic batch, MPII metadata); :func:`~tests.helpers.models.blob_model` one whose single joint
  follows the brightest spot of the image; :func:`~tests.helpers.models.write_model` any graph.
- ``tests.helpers.server``: :class:`~tests.helpers.server.ServiceProcess` runs the real
  ``python -m service`` (uvicorn) on a free 127.0.0.1 port with ``POSE_*`` settings passed as
  keywords, waits for ``/readyz`` and stops it with SIGTERM; :func:`~tests.helpers.server.run_service_once`
  runs it expecting an exit (start-up failures).

Fixtures (session-scoped ones are built once and shared):

- ``constant_peaks``: ``(16, 2)`` heatmap-pixel peaks of the constant model, flip-symmetric for MPII.
- ``constant_model_path``: that model, written once per session.
- ``constant_server``: a running service on it (``ServiceProcess``; ``.url``, ``.client()``, ``.log``),
  with ``POSE_MAX_UPLOAD_BYTES=2000000``, ``POSE_MAX_PIXELS=4000000``, ``POSE_MAX_FILES=4`` so limits are cheap to hit.
- ``blob_model_path``: the one-joint blob model.
- ``start_service``: factory ``start_service(model_path, wait="/readyz", **settings) -> ServiceProcess``;
  every server it starts is stopped at the end of the test.
- ``one_torch_thread``: module-scoped; torch on one thread while a module runs (tiny convolutions are
  faster so, above all on a busy machine). Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
- ``coco_image``: bytes of ``tests/data/000000000785.jpg`` (COCO val2017 image 785, CC BY 2.0;
  see tests/data/README.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from pose.layout import MPII
from tests.helpers.models import blob_model, constant_model, flip_symmetric_peaks
from tests.helpers.server import ServiceProcess

DATA_DIR = Path(__file__).resolve().parent / "data"
COCO_IMAGE = DATA_DIR / "000000000785.jpg"
CONSTANT_SERVER_LIMITS = {"max_upload_bytes": 2_000_000, "max_pixels": 4_000_000, "max_files": 4}


@pytest.fixture(scope="session")
def constant_peaks() -> np.ndarray:
    return flip_symmetric_peaks(MPII, (64, 64), seed=7)


@pytest.fixture(scope="session")
def constant_model_path(tmp_path_factory: pytest.TempPathFactory, constant_peaks: np.ndarray) -> Path:
    path = tmp_path_factory.mktemp("models") / "constant.onnx"
    constant_model(path, constant_peaks)
    return path


@pytest.fixture(scope="session")
def constant_server(constant_model_path: Path) -> Iterator[ServiceProcess]:
    with ServiceProcess(constant_model_path, **CONSTANT_SERVER_LIMITS) as server:
        yield server


@pytest.fixture(scope="session")
def blob_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return blob_model(tmp_path_factory.mktemp("models") / "blob.onnx")


@pytest.fixture
def start_service() -> Iterator[Callable[..., ServiceProcess]]:
    started: list[ServiceProcess] = []

    def start(model_path: Path | str | None, wait: str | None = "/readyz", **settings: object) -> ServiceProcess:
        server = ServiceProcess(model_path, **settings)
        started.append(server)
        return server.start(wait=wait)

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def coco_image() -> bytes:
    return COCO_IMAGE.read_bytes()


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """torch on one thread for the module's duration (torch imported here only when asked for)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
