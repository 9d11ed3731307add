"""Images -> keypoints: the one code path behind every prediction, with or without a server.

``decode -> preprocess -> inference -> postprocess``. How a batch reaches the model is chosen once,
when the pipeline is built: :class:`DirectInference` runs the whole request (decode, model call,
postprocess) in ONE worker-thread call; :class:`BatchedInference` prepares the batch in a worker
thread, awaits a dynamic batcher shared by concurrent requests, then postprocesses. The result is
plain data (arrays, sizes, stage times): the HTTP layer turns it into JSON and metrics.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import anyio.to_thread
import numpy as np

from pose.codec import HeatmapCodec, Refine, flip_heatmaps
from pose.geometry import Affine, ResizeMode, draft_size, plan
from service.imaging.decode import DecodedImage, Decoder, DecodeWorkers
from service.imaging.resample import resample_into
from service.inference.engine import Engine, ModelInfo
from service.settings import Settings

RunModel = Callable[[np.ndarray], np.ndarray]  # blocking: (N, 3, H, W) input -> (N, K, h, w) heatmaps


@dataclass(frozen=True)
class DirectInference:
    """The model called by the request's own worker thread (no batching)."""

    run: RunModel


@dataclass(frozen=True)
class BatchedInference:
    """The model called through a dynamic batcher: ``await submit(batch) -> heatmaps``."""

    submit: Callable[[np.ndarray], Awaitable[np.ndarray]]


Inference = DirectInference | BatchedInference


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


@dataclass(frozen=True)
class StageTimes:
    """Milliseconds per stage: ``decode`` is this image's own; the others are its batch's, shared."""

    decode: float
    preprocess: float
    inference: float
    postprocess: float


@dataclass
class Prediction:
    """One image's keypoints in its own pixels, and what they were computed from."""

    points: np.ndarray  # (K, 2) float64 x, y: pixel centres at integers, (0, 0) the top-left pixel
    scores: np.ndarray  # (K,) float32 heatmap peaks
    size: tuple[int, int]  # the oriented image's (width, height)
    timings: StageTimes
    # the oriented image (possibly decoded at reduced scale, see DecodedImage): kept only when asked for
    image: DecodedImage | None = None

    def decoded(self) -> DecodedImage:
        """The image the keypoints were computed on (predict with ``keep_images=True``)."""
        if self.image is None:
            raise ValueError("the image was not kept: predict with keep_images=True")
        return self.image


@dataclass
class _Prepared:
    sizes: list[tuple[int, int]]
    affines: list[Affine]
    decode_ms: list[float]
    batch: np.ndarray
    preprocess_ms: float
    images: Sequence[DecodedImage] | None  # kept for the caller, else None


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


@contextmanager
def _releasing_on_error(prepared: _Prepared) -> Iterator[None]:
    """Give the kept images' decode budget back if the request fails before the caller gets them."""
    try:
        yield
    except BaseException:
        for image in prepared.images or ():
            image.release()
        raise


class Pipeline:
    """Runs images through the model and maps the keypoints back to image pixels."""

    def __init__(
        self,
        info: ModelInfo,
        inference: Inference,
        decoder: Decoder,
    ) -> None:
        meta = info.metadata
        self.info = info
        self.inference = inference
        self.decoder = decoder  # pixel limit, threads, memory budget, worker processes (service.imaging.decode)
        self.codec = HeatmapCodec(meta.input_size, meta.heatmap_stride)
        self.layout = meta.layout

    # ------------------------------------------------------------------ entry points
    async def predict_uploads(
        self, uploads: Sequence[Upload], options: PredictOptions, keep_images: bool = False
    ) -> list[Prediction]:
        """Bytes -> predictions, one per upload, in order (one model call for all of them).

        Each upload is decoded straight into its slot of the model input and its pixels dropped before
        the next is decoded, so a batch holds one full-size decode at a time; ``keep_images`` keeps them
        (in :attr:`Prediction.image`) for a caller that draws on them, and that must
        :meth:`~DecodedImage.release` them (their share of the decode budget) when done.
        """
        return await self._predict(lambda: self._decode_and_prepare(uploads, options, keep_images), options)

    def rereader(self, upload: Upload) -> Callable[[tuple[int, int]], DecodedImage]:
        """``reread`` for :func:`service.imaging.overlay.overlay_picture`: the upload decoded again, with at least
        the size asked for, under the pipeline's limits, budget and workers (released once drawn)."""
        return lambda size: self.decoder.read(upload.data, upload.content_type, size)

    def plan(self, size: tuple[int, int], options: PredictOptions) -> Affine:
        """The image -> input map for an image of ``size`` (InvalidBox for a bad bbox)."""
        return plan(size, self.codec.input_size, options.resize, options.bbox)

    # ------------------------------------------------------------------ stages
    async def _predict(self, prepare: Callable[[], _Prepared], options: PredictOptions) -> list[Prediction]:
        inference = self.inference
        if isinstance(inference, DirectInference):

            def whole_request() -> list[Prediction]:
                prepared = prepare()
                with _releasing_on_error(prepared):
                    start = time.perf_counter()
                    heatmaps = inference.run(prepared.batch)
                    return self._postprocess(prepared, heatmaps, _ms(start), options)

            return await anyio.to_thread.run_sync(whole_request)
        prepared = await anyio.to_thread.run_sync(prepare)
        with _releasing_on_error(prepared):
            start = time.perf_counter()
            heatmaps = await inference.submit(prepared.batch)
            return self._postprocess(prepared, heatmaps, _ms(start), options)

    def _decode_and_prepare(self, uploads: Sequence[Upload], options: PredictOptions, keep: bool) -> _Prepared:
        n = len(uploads)
        batch = self._empty_batch(n, options.flip)
        sizes, affines, decode_ms, kept = [], [], [], []
        preprocess_ms = 0.0
        try:
            for slot, upload in zip(batch[:n], uploads, strict=True):
                start = time.perf_counter()
                opened = self.decoder.open(upload.data, upload.content_type)
                # JPEG: plan from the header to pick a reduced-scale decode; the final plan uses the decoded size
                min_size = draft_size(opened.size, self.plan(opened.size, options)) if opened.orientation else None
                image = self.decoder.decode(opened, min_size)
                try:
                    affine = self.plan(image.size, options)
                    decode_ms.append(_ms(start))
                    start = time.perf_counter()
                    resample_into(image.image, affine, slot, image.reduction, image.size)
                    preprocess_ms += _ms(start)
                finally:
                    if keep:
                        kept.append(image)
                    else:
                        image.release()
                sizes.append(image.size)
                affines.append(affine)
                del image, opened  # the next upload decodes without this one's pixels alive
        except BaseException:
            for image in kept:
                image.release()
            raise
        start = time.perf_counter()
        self._mirror(batch, n, options.flip)
        return _Prepared(sizes, affines, decode_ms, batch, preprocess_ms + _ms(start), kept if keep else None)

    def _empty_batch(self, n: int, flip: bool) -> np.ndarray:
        """A zeroed ``(N or 2N, 3, H, W)`` input; with ``flip`` the mirrored copies follow the originals."""
        return np.zeros(((2 if flip else 1) * n, 3, *self.codec.input_size), np.float32)

    @staticmethod
    def _mirror(batch: np.ndarray, n: int, flip: bool) -> None:
        if flip:
            batch[n:] = batch[:n, :, :, ::-1]

    def _postprocess(
        self, prepared: _Prepared, heatmaps: np.ndarray, inference_ms: float, options: PredictOptions
    ) -> list[Prediction]:
        """Heatmaps -> keypoints in image pixels, through each input map's exact inverse."""
        start = time.perf_counter()
        n = len(prepared.sizes)
        if options.flip:
            heatmaps = 0.5 * (heatmaps[:n] + flip_heatmaps(heatmaps[n:], self.layout.flip_index))
        coords, scores = self.codec.decode(heatmaps, options.refine)
        points = [affine.to_image(xy) for affine, xy in zip(prepared.affines, coords, strict=True)]
        postprocess_ms = _ms(start)
        return [
            Prediction(
                points[i],
                scores[i],
                size,
                StageTimes(prepared.decode_ms[i], prepared.preprocess_ms, inference_ms, postprocess_ms),
                None if prepared.images is None else prepared.images[i],
            )
            for i, size in enumerate(prepared.sizes)
        ]


def build_pipeline(
    engine: Engine, settings: Settings, inference: Inference | None = None, workers: DecodeWorkers | None = None
) -> Pipeline:
    """The service's pipeline for ``engine``: the decoder of ``settings`` (with ``workers`` for costly decodes, if
    given: :func:`service.imaging.decode.start_workers`), direct model calls unless ``inference`` says otherwise.
    The server, the render command line and the bench all build theirs here."""
    decoder = Decoder.from_settings(settings, workers)
    return Pipeline(engine.info, inference or DirectInference(engine.run), decoder)
