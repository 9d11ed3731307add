"""Images -> keypoints: the one code path behind every prediction route.

``decode -> preprocess -> inference -> postprocess``. Inference goes through the awaitable
``state.infer(batch) -> heatmaps`` (``app.state.infer``), looked up on every call so that a
dynamic batcher can replace it without touching this module or the routes. When ``state.infer`` is a
:class:`ThreadedInfer` (no batcher), the whole pipeline runs in ONE worker-thread call instead of
hopping between the event loop and threads for each stage.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio.to_thread
import numpy as np

from service.codec import HeatmapCodec, Refine, flip_heatmaps
from service.engine import ModelInfo
from service.images import DecodedImage, decode_rgb, open_image
from service.metrics import Metrics
from service.schemas import ImageSize, Keypoint, ModelRef, PoseResult, Timings
from service.transform import Affine, ResizeMode, draft_size, plan, render


class HasInfer(Protocol):
    infer: Callable[[np.ndarray], Awaitable[np.ndarray]]


class ThreadedInfer:
    """``await infer(batch)`` runs the blocking ``run(batch)`` in a worker thread.

    The predictor recognises it and calls :attr:`blocking` directly from its own worker thread, so a
    request crosses between the event loop and the thread pool once. A batcher's ``submit`` is not one,
    so replacing ``state.infer`` with it routes every model call through the batcher again.
    """

    def __init__(self, run: Callable[[np.ndarray], np.ndarray]) -> None:
        self.blocking = run

    async def __call__(self, batch: np.ndarray) -> np.ndarray:
        return await anyio.to_thread.run_sync(self.blocking, batch)


@dataclass(frozen=True)
class PredictOptions:
    """How to turn an image into the network input and heatmaps into keypoints."""

    resize: ResizeMode = "letterbox"
    refine: Refine = "quarter"
    flip: bool = False
    bbox: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class Upload:
    """One uploaded file: its bytes and the content type the client declared."""

    data: bytes
    content_type: str | None = None
    filename: str | None = None


@dataclass
class Prediction:
    """A response body and the decoded image it was computed from (for drawing)."""

    result: PoseResult
    image: DecodedImage


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class Predictor:
    """Runs images through the model and maps the keypoints back to image pixels."""

    def __init__(
        self,
        info: ModelInfo,
        state: HasInfer,
        max_pixels: int,
        metrics: Metrics | None = None,
        decode_threads: int = 1,
    ) -> None:
        meta = info.metadata
        self.info = info
        self.codec = HeatmapCodec(meta.input_size, meta.heatmap_stride)
        self.names = meta.keypoint_names
        self.flip_index = meta.layout.flip_index
        self.max_pixels = max_pixels
        self.decode_threads = decode_threads  # for one large JPEG with restart markers (service.jpeg_strips)
        self.metrics = metrics
        self._state = state
        self._model_ref = ModelRef(name=info.name, version=info.version)

    # ------------------------------------------------------------------ entry points
    async def predict_uploads(self, uploads: Sequence[Upload], options: PredictOptions) -> list[Prediction]:
        """Bytes -> predictions, one per upload, in order (one model call for all of them)."""
        infer = self._state.infer
        if isinstance(infer, ThreadedInfer):
            return await anyio.to_thread.run_sync(self._predict_uploads_inline, uploads, options, infer.blocking)
        decoded, affines, decode_ms, batch, preprocess_ms = await anyio.to_thread.run_sync(
            self._decode_and_prepare, uploads, options
        )
        start = time.perf_counter()
        heatmaps = await infer(batch)
        return self._postprocess(decoded, affines, decode_ms, preprocess_ms, heatmaps, _ms(start), options)

    async def predict_images(self, images: Sequence[DecodedImage], options: PredictOptions) -> list[Prediction]:
        """Already decoded, EXIF-oriented images -> predictions (see :meth:`DecodedImage.from_pil`)."""
        infer = self._state.infer
        if isinstance(infer, ThreadedInfer):
            return await anyio.to_thread.run_sync(self._predict_images_inline, images, options, infer.blocking)
        affines, batch, preprocess_ms = await anyio.to_thread.run_sync(self._plan_and_prepare, images, options)
        start = time.perf_counter()
        heatmaps = await infer(batch)
        return self._postprocess(images, affines, [0.0] * len(images), preprocess_ms, heatmaps, _ms(start), options)

    def plan(self, size: tuple[int, int], options: PredictOptions) -> Affine:
        """The image -> input map for an image of ``size`` (422 for a bad bbox)."""
        return plan(size, self.codec.input_size, options.resize, options.bbox)

    # ------------------------------------------------------------------ stages
    def _decode_and_prepare(
        self, uploads: Sequence[Upload], options: PredictOptions
    ) -> tuple[list[DecodedImage], list[Affine], list[float], np.ndarray, float]:
        decoded, affines, decode_ms = [], [], []
        for upload in uploads:
            start = time.perf_counter()
            opened = open_image(upload.data, self.max_pixels, upload.content_type)
            # JPEG: plan from the header to pick a reduced-scale decode; the final plan uses the decoded size
            min_size = draft_size(opened.size, self.plan(opened.size, options)) if opened.orientation else None
            image = decode_rgb(opened, min_size, self.decode_threads)
            decoded.append(image)
            affines.append(self.plan(image.size, options))
            decode_ms.append(_ms(start))
        start = time.perf_counter()
        batch = self._prepare(decoded, affines, options.flip)
        return decoded, affines, decode_ms, batch, _ms(start)

    def _predict_uploads_inline(
        self, uploads: Sequence[Upload], options: PredictOptions, run: Callable[[np.ndarray], np.ndarray]
    ) -> list[Prediction]:
        """The whole pipeline in the calling (worker) thread, with the blocking model call ``run``."""
        decoded, affines, decode_ms, batch, preprocess_ms = self._decode_and_prepare(uploads, options)
        start = time.perf_counter()
        heatmaps = run(batch)
        return self._postprocess(decoded, affines, decode_ms, preprocess_ms, heatmaps, _ms(start), options)

    def _predict_images_inline(
        self, images: Sequence[DecodedImage], options: PredictOptions, run: Callable[[np.ndarray], np.ndarray]
    ) -> list[Prediction]:
        affines, batch, preprocess_ms = self._plan_and_prepare(images, options)
        start = time.perf_counter()
        heatmaps = run(batch)
        return self._postprocess(images, affines, [0.0] * len(images), preprocess_ms, heatmaps, _ms(start), options)

    def _plan_and_prepare(
        self, images: Sequence[DecodedImage], options: PredictOptions
    ) -> tuple[list[Affine], np.ndarray, float]:
        """Decoded images -> their input maps, the input batch and the time it took (ms)."""
        start = time.perf_counter()
        affines = [self.plan(image.size, options) for image in images]
        return affines, self._prepare(images, affines, options.flip), _ms(start)

    def _prepare(self, images: Sequence[DecodedImage], affines: Sequence[Affine], flip: bool) -> np.ndarray:
        """One preallocated ``(N or 2N, 3, H, W)`` batch; the mirrored copies follow when flipping."""
        n = len(images)
        batch = np.zeros(((2 if flip else 1) * n, 3, *self.codec.input_size), np.float32)
        for slot, image, affine in zip(batch[:n], images, affines, strict=True):
            render(image.image, affine, slot, image.reduction, image.size)
        if flip:
            batch[n:] = batch[:n, :, :, ::-1]
        return batch

    def _postprocess(
        self,
        images: Sequence[DecodedImage],
        affines: Sequence[Affine],
        decode_ms: Sequence[float],
        preprocess_ms: float,
        heatmaps: np.ndarray,
        inference_ms: float,
        options: PredictOptions,
    ) -> list[Prediction]:
        """Heatmaps -> keypoints in image pixels, the response bodies and the stage metrics."""
        start = time.perf_counter()
        n = len(images)
        if options.flip:
            heatmaps = 0.5 * (heatmaps[:n] + flip_heatmaps(heatmaps[n:], self.flip_index))
        coords, scores = self.codec.decode(heatmaps, options.refine)
        scale = np.array([(a.sx, a.sy) for a in affines], np.float64)[:, None, :]
        shift = np.array([(a.tx, a.ty) for a in affines], np.float64)[:, None, :]
        points = (coords.astype(np.float64) - shift) / scale  # exact inverse of the input map
        points_list, scores_list = points.tolist(), scores.tolist()
        postprocess_ms = _ms(start)

        predictions = []
        for i, image in enumerate(images):
            keypoints = [
                Keypoint.model_construct(name=name, x=xy[0], y=xy[1], score=score)
                for name, xy, score in zip(self.names, points_list[i], scores_list[i], strict=True)
            ]
            timings = Timings(
                decode=decode_ms[i], preprocess=preprocess_ms, inference=inference_ms, postprocess=postprocess_ms
            )
            result = PoseResult.model_construct(
                keypoints=keypoints,
                image=ImageSize(width=image.size[0], height=image.size[1]),
                model=self._model_ref,
                timings_ms=timings,
            )
            predictions.append(Prediction(result, image))
        if self.metrics is not None:
            for ms in decode_ms:
                if ms > 0:  # 0: the caller passed decoded images
                    self.metrics.stage_seconds.labels("decode").observe(ms / 1000.0)
            self.metrics.observe_stages(
                {"preprocess": preprocess_ms, "inference": inference_ms, "postprocess": postprocess_ms}
            )
        return predictions
