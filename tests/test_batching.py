"""Dynamic batcher against a real ONNX Runtime session (a tiny hand-built graph: y = 2x + 1)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from service.inference.batching import GPU_DEFAULT_MAX_BATCH, DynamicBatcher, Overloaded, ShuttingDown, batcher_for
from tests.helpers.answers import http_answer
from tests.helpers.images import blob_image, encode

SHAPE = (3, 4, 4)  # per-image (C, H, W)


@pytest.fixture(scope="module")
def session() -> ort.InferenceSession:
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, ["N", 3, "H", "W"])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["image", "two"], ["t"]), helper.make_node("Add", ["t", "one"], ["heatmaps"])],
        "affine",
        [x],
        [y],
        initializer=[two, one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


class CountingRun:
    """The batcher's blocking call: the real session, counting calls and batch sizes, optionally gated."""

    def __init__(self, session: ort.InferenceSession, gate: threading.Event | None = None) -> None:
        self.session = session
        self.gate = gate
        self.sizes: list[int] = []
        self.started = threading.Event()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.started.set()
        if self.gate is not None and not self.gate.wait(10):
            raise TimeoutError("test gate never opened")
        self.sizes.append(int(images.shape[0]))
        return self.session.run(["heatmaps"], {"image": images})[0]


def images(value: float, n: int = 1, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """n images, image i filled with value + i / 100 so every row is recognisable."""
    out = np.empty((n, *shape), np.float32)
    for i in range(n):
        out[i] = value + i / 100
    return out


def expected(x: np.ndarray) -> np.ndarray:
    return 2 * x + 1


def run_async(coro_fn: Callable[[], object]) -> object:
    return asyncio.run(asyncio.wait_for(coro_fn(), 30))  # type: ignore[arg-type]


def test_concurrent_requests_get_their_own_rows(session: ort.InferenceSession) -> None:
    run = CountingRun(session)

    async def main() -> None:
        async with DynamicBatcher(run, max_batch_size=8, timeout_ms=20) as batcher:
            inputs = [images(float(k), n=1 + k % 3) for k in range(24)]
            results = await asyncio.gather(*(batcher.submit(x) for x in inputs))
        for x, y in zip(inputs, results, strict=True):
            assert y.shape == x.shape
            np.testing.assert_array_equal(y, expected(x))
        assert sum(run.sizes) == sum(len(x) for x in inputs)
        assert len(run.sizes) < len(inputs)  # requests were actually merged
        assert max(run.sizes) <= 8

    run_async(main)


def test_full_batch_dispatches_at_once_as_one_call(session: ort.InferenceSession) -> None:
    run = CountingRun(session)

    async def main() -> None:
        async with DynamicBatcher(run, max_batch_size=8, timeout_ms=5000) as batcher:
            t0 = time.monotonic()
            await asyncio.gather(*(batcher.submit(images(k)) for k in range(8)))
            elapsed = time.monotonic() - t0
        assert run.sizes == [8]
        assert elapsed < 2.5  # did not sit out the 5 s timeout

    run_async(main)


def test_lone_request_waits_for_the_timeout(session: ort.InferenceSession) -> None:
    run = CountingRun(session)

    async def main() -> None:
        async with DynamicBatcher(run, max_batch_size=8, timeout_ms=150) as batcher:
            t0 = time.monotonic()
            y = await batcher.submit(images(3.0))
            elapsed = time.monotonic() - t0
        np.testing.assert_array_equal(y, expected(images(3.0)))
        assert elapsed >= 0.14
        assert elapsed < 5.0
        assert run.sizes == [1]

    run_async(main)


def test_requests_that_queue_during_a_batch_go_out_together(session: ort.InferenceSession) -> None:
    gate = threading.Event()
    run = CountingRun(session, gate)

    async def main() -> None:
        async with DynamicBatcher(run, max_batch_size=8, timeout_ms=0) as batcher:
            first = asyncio.ensure_future(batcher.submit(images(0.0)))
            while not run.started.is_set():
                await asyncio.sleep(0.005)
            rest = [asyncio.ensure_future(batcher.submit(images(k))) for k in range(1, 6)]
            await asyncio.sleep(0.05)
            gate.set()
            await asyncio.gather(first, *rest)
        assert run.sizes == [1, 5]

    run_async(main)


def test_queue_is_bounded(session: ort.InferenceSession) -> None:
    gate = threading.Event()
    run = CountingRun(session, gate)

    async def main() -> None:
        async with DynamicBatcher(run, max_batch_size=2, timeout_ms=0, max_queue=4) as batcher:
            busy = asyncio.ensure_future(batcher.submit(images(0.0)))
            while not run.started.is_set():
                await asyncio.sleep(0.005)
            waiting = [asyncio.ensure_future(batcher.submit(images(k, n=2))) for k in (1, 2)]
            await asyncio.sleep(0.01)
            assert batcher.queued_images == 4
            with pytest.raises(Overloaded) as info:
                await batcher.submit(images(9.0))
            assert http_answer(info.value) == (503, "overloaded")
            gate.set()
            results = await asyncio.gather(busy, *waiting)
            np.testing.assert_array_equal(results[2], expected(images(2.0, n=2)))
            assert batcher.queued_images == 0
            await batcher.submit(images(5.0))  # room again

    run_async(main)


def test_cancelled_request_is_dropped_cleanly(session: ort.InferenceSession) -> None:
    gate = threading.Event()
    run = CountingRun(session, gate)

    async def main() -> None:
        async with DynamicBatcher(run, max_batch_size=8, timeout_ms=0, max_queue=8) as batcher:
            busy = asyncio.ensure_future(batcher.submit(images(0.0)))
            while not run.started.is_set():
                await asyncio.sleep(0.005)
            a = asyncio.ensure_future(batcher.submit(images(1.0)))
            b = asyncio.ensure_future(batcher.submit(images(2.0, n=3)))
            c = asyncio.ensure_future(batcher.submit(images(3.0)))
            await asyncio.sleep(0.01)
            assert batcher.queued_images == 5
            b.cancel()
            await asyncio.sleep(0.01)
            assert batcher.queued_images == 2  # its slots are free at once
            gate.set()
            ya, yc = await asyncio.gather(a, c)
            with pytest.raises(asyncio.CancelledError):
                await b
            await busy
        np.testing.assert_array_equal(ya, expected(images(1.0)))
        np.testing.assert_array_equal(yc, expected(images(3.0)))
        assert run.sizes == [1, 2]  # b never reached the session

    run_async(main)


def test_cancelled_while_running_does_not_disturb_the_batch(session: ort.InferenceSession) -> None:
    gate = threading.Event()
    run = CountingRun(session, gate)

    async def main() -> None:
        async with DynamicBatcher(run, max_batch_size=8, timeout_ms=50) as batcher:
            a = asyncio.ensure_future(batcher.submit(images(1.0)))
            b = asyncio.ensure_future(batcher.submit(images(2.0)))
            while not run.started.is_set():
                await asyncio.sleep(0.005)
            a.cancel()
            gate.set()
            yb = await b
            np.testing.assert_array_equal(yb, expected(images(2.0)))
            yc = await batcher.submit(images(4.0))  # still serving
            np.testing.assert_array_equal(yc, expected(images(4.0)))
        assert run.sizes[0] == 2

    run_async(main)


def test_shapes_are_not_mixed(session: ort.InferenceSession) -> None:
    run = CountingRun(session)

    async def main() -> None:
        async with DynamicBatcher(run, max_batch_size=8, timeout_ms=30) as batcher:
            small = images(1.0, shape=(3, 4, 4))
            large = images(2.0, shape=(3, 8, 8))
            ys, yl = await asyncio.gather(batcher.submit(small), batcher.submit(large))
        np.testing.assert_array_equal(ys, expected(small))
        np.testing.assert_array_equal(yl, expected(large))
        assert sorted(run.sizes) == [1, 1]

    run_async(main)


def test_model_error_reaches_every_request_and_service_continues(session: ort.InferenceSession) -> None:
    calls = {"n": 0}

    def flaky(x: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 1:
            return session.run(["heatmaps"], {"image": x[:, :2]})[0]  # wrong channel count: ORT raises
        return session.run(["heatmaps"], {"image": x})[0]

    async def main() -> None:
        async with DynamicBatcher(flaky, max_batch_size=4, timeout_ms=30) as batcher:
            results = await asyncio.gather(
                batcher.submit(images(1.0)), batcher.submit(images(2.0)), return_exceptions=True
            )
            assert all(isinstance(r, Exception) for r in results)
            y = await batcher.submit(images(3.0))
            np.testing.assert_array_equal(y, expected(images(3.0)))

    run_async(main)


def test_close_finishes_queued_work_then_refuses(session: ort.InferenceSession) -> None:
    run = CountingRun(session)

    async def main() -> None:
        batcher = DynamicBatcher(run, max_batch_size=2, timeout_ms=1000)
        with pytest.raises(ShuttingDown):
            await batcher.submit(images(0.0))  # not started
        await batcher.start()
        pending = [asyncio.ensure_future(batcher.submit(images(k))) for k in range(5)]
        await asyncio.sleep(0)
        await batcher.close()
        results = await asyncio.gather(*pending)
        for k, y in enumerate(results):
            np.testing.assert_array_equal(y, expected(images(k)))
        with pytest.raises(ShuttingDown):
            await batcher.submit(images(1.0))
        assert not batcher.running

    run_async(main)


def test_invalid_configuration_is_rejected(session: ort.InferenceSession) -> None:
    run = CountingRun(session)
    with pytest.raises(ValueError):
        DynamicBatcher(run, max_batch_size=0)
    with pytest.raises(ValueError):
        DynamicBatcher(run, max_queue=0)
    with pytest.raises(ValueError):
        DynamicBatcher(run, timeout_ms=-1)


def test_batching_defaults_follow_the_provider(session: ort.InferenceSession) -> None:
    run = CountingRun(session)
    assert batcher_for(None, 2.0, 64, ["CPUExecutionProvider"], run) is None  # CPU default: off
    gpu = batcher_for(None, 2.0, 64, ["CUDAExecutionProvider", "CPUExecutionProvider"], run)
    assert gpu is not None and gpu.max_batch_size == GPU_DEFAULT_MAX_BATCH
    assert batcher_for(1, 2.0, 64, ["CUDAExecutionProvider"], run) is None  # 1 turns it off anywhere
    cpu = batcher_for(4, 5.0, 16, ["CPUExecutionProvider"], run)
    assert cpu is not None and (cpu.max_batch_size, cpu.timeout_s, cpu.max_queue) == (4, 0.005, 16)


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith((name + " ", name + "{")):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_service_batches_concurrent_requests(blob_model_path: Path, start_service: Callable[..., object]) -> None:
    """Real server, batching on: concurrent uploads share session calls and each gets its own keypoint."""
    server = start_service(blob_model_path, batch_max_size=8, batch_timeout_ms=300)
    centres = [(40.0 + 30 * i, 200.0 - 20 * i) for i in range(6)]
    uploads = [encode(blob_image(256, 256, c, sigma=6.0), "PNG") for c in centres]

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:  # type: ignore[attr-defined]
            return await asyncio.gather(
                *(client.post("/predict", files={"file": ("b.png", data, "image/png")}) for data in uploads)
            )

    responses = asyncio.run(main())
    for response, (cx, cy) in zip(responses, centres, strict=True):
        assert response.status_code == 200, response.text
        (keypoint,) = response.json()["keypoints"]
        assert abs(keypoint["x"] - cx) < 3 and abs(keypoint["y"] - cy) < 3
    metrics = httpx.get(server.url + "/metrics").text  # type: ignore[attr-defined]
    assert _metric(metrics, "pose_inference_batch_size_sum") == len(uploads)
    assert _metric(metrics, "pose_inference_batch_size_count") < len(uploads)
    assert _metric(metrics, "pose_inference_queued_images") == 0  # the batcher's queue, empty once all answered
