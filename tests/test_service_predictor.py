"""The pipeline without HTTP: any lossless encoding of a picture takes the same path to the same answer."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from PIL import Image

from pose.errors import PoseError
from service.imaging.decode import Decoder
from service.inference.engine import Engine
from service.inference.pipeline import BatchedInference, DirectInference, Pipeline, PredictOptions, Upload
from service.inference.runtime import SessionOptions
from tests.helpers.answers import http_answer
from tests.helpers.images import blob_image, encode


@pytest.fixture(scope="module")
def predictor(blob_model_path) -> Pipeline:
    """A pipeline whose model calls go through an awaitable (as a batcher's do), recorded in ``calls``."""
    engine = Engine.load(blob_model_path, SessionOptions(intra_op_threads=1))
    calls: list[int] = []

    async def infer(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return engine.run(batch)

    predictor = Pipeline(engine.info, BatchedInference(infer), Decoder(10_000_000))
    predictor.calls = calls  # type: ignore[attr-defined]
    return predictor


def test_lossless_encodings_agree(predictor):
    picture = blob_image(320, 200, (100.0, 150.0), 8.0)
    options = PredictOptions(refine="dark", flip=True)
    uploads = [Upload(encode(picture), "image/png"), Upload(encode(picture, "BMP"), "image/bmp")]
    from_png, from_bmp = asyncio.run(predictor.predict_uploads(uploads, options))
    np.testing.assert_array_equal(from_png.points, from_bmp.points)
    np.testing.assert_array_equal(from_png.scores, from_bmp.scores)
    [(x, y)] = from_png.points
    assert abs(x - 100.0) < 0.5 and abs(y - 150.0) < 0.5
    assert from_png.size == (320, 200) and from_png.image is None  # its pixels were not kept


def test_one_model_call_per_request_with_mirrored_copies(predictor):
    predictor.calls.clear()
    uploads = [Upload(encode(Image.new("RGB", (50 + i, 40)))) for i in range(3)]
    results = asyncio.run(predictor.predict_uploads(uploads, PredictOptions(flip=True)))
    assert [r.size[0] for r in results] == [50, 51, 52]
    assert predictor.calls == [6]  # three images and their mirror images, one batch


def test_bad_bbox_is_rejected_before_inference(predictor):
    predictor.calls.clear()
    with pytest.raises(PoseError) as caught:
        asyncio.run(
            predictor.predict_uploads([Upload(encode(Image.new("RGB", (30, 30))))], PredictOptions(bbox=(40, 0, 5, 5)))
        )
    assert http_answer(caught.value)[0] == 422 and predictor.calls == []


def test_io_binding_gives_the_plain_run_result(blob_model_path):
    plain = Engine.load(blob_model_path, SessionOptions("onnxruntime", intra_op_threads=1))
    bound = Engine.load(blob_model_path, SessionOptions("onnxruntime", intra_op_threads=1, io_binding=True))
    assert plain.io_binding is None  # default on CPU: off
    assert bound.io_binding == "cpu"
    rng = np.random.default_rng(3)
    for n in (1, 3):
        batch = rng.random((n, 3, *plain.info.metadata.input_size), dtype=np.float32)
        got = bound.run(batch)
        assert got.shape == (n, plain.info.metadata.num_joints, *plain.info.heatmap_size)
        np.testing.assert_array_equal(got, plain.run(batch))
        mirrored = batch[:, :, :, ::-1]  # not contiguous: bound as a copy
        np.testing.assert_array_equal(bound.run(mirrored), plain.run(np.ascontiguousarray(mirrored)))


def test_restart_marker_jpeg_predicts_the_same_on_any_decode_thread_count(blob_model_path):
    engine = Engine.load(blob_model_path, SessionOptions(intra_op_threads=1))

    picture = blob_image(2400, 1600, (1500.0, 500.0), 60.0)
    noisy = np.asarray(picture).astype(np.int16) + np.random.default_rng(0).integers(-20, 21, (1600, 2400, 3))
    data = encode(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)), "JPEG", quality=95, restart_marker_rows=1)
    assert len(data) > 256 * 1024  # large enough to be decoded in strips

    def predict(threads: int):
        predictor = Pipeline(engine.info, DirectInference(engine.run), Decoder(10_000_000, threads))
        [prediction] = asyncio.run(predictor.predict_uploads([Upload(data, "image/jpeg")], PredictOptions(), True))
        return prediction

    one, four = predict(1), predict(4)
    assert np.array_equal(np.asarray(one.decoded().image), np.asarray(four.decoded().image))
    np.testing.assert_array_equal(one.points, four.points)
    [(x, y)] = four.points
    assert abs(x - 1500.0) < 19 and abs(y - 500.0) < 19  # half a heatmap cell (37.5 px)
