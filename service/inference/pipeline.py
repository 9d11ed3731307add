"""Uploads -> people -> keypoints: the one code path behind every prediction, with or without a server.

``decode -> detect -> preprocess -> inference -> postprocess``. Each upload is decoded, its people found (the
request's ``bbox``, else the person detector, else the whole photo letterboxed), and each person's box grown and
cropped exactly as a ``bbox`` is; the crops of every upload of a request go through ONE model call. How that
call reaches the model is chosen once, when the pipeline is built: :class:`DirectInference` runs the whole
request (decode, model call, postprocess) in ONE worker-thread call; :class:`BatchedInference` prepares the
batch in a worker thread, awaits a dynamic batcher shared by concurrent requests, then postprocesses. The result
is plain data (arrays, boxes, sizes, stage times): the HTTP layer turns it into JSON and metrics.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import anyio.to_thread
import numpy as np

from pose.codec import HeatmapCodec, Refine, flip_heatmaps
from pose.errors import PoseError
from pose.geometry import Affine, Box, ResizeMode, draft_size, plan
from service.imaging.decode import DecodedImage, Decoder, DecodeWorkers
from service.imaging.overlay import Marks, marks
from service.imaging.resample import resample_into
from service.inference.detector import PersonDetector
from service.inference.engine import Engine, ModelInfo
from service.settings import DEFAULT_MAX_CROPS, DEFAULT_MAX_PEOPLE, Settings

RunModel = Callable[[np.ndarray], np.ndarray]  # blocking: (N, 3, H, W) input -> (N, K, h, w) heatmaps
Source = Literal["bbox", "detector", "whole_image"]
# Decoding for the detector: the longer side the image keeps at least (a JPEG is decoded at reduced scale only
# down to this), so that a person of a quarter of the photo's height still fills most of the pose input.
DETECT_DECODE_SIDE = 1024


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
    """How to find the people, turn them into network inputs, and heatmaps into keypoints."""

    resize: ResizeMode = "letterbox"
    refine: Refine = "quarter"
    flip: bool = False
    bbox: Box | None = None  # one person, this box: the detector is skipped
    max_people: int | None = None  # people per image; None: the pipeline's cap


@dataclass(frozen=True)
class Upload:
    """One uploaded file: its bytes and the content type the client declared."""

    data: bytes
    content_type: str | None = None
    filename: str | None = None


@dataclass(frozen=True)
class StageTimes:
    """Milliseconds per stage: ``decode`` and ``detect`` are this image's own; the others its batch's, shared."""

    decode: float
    detect: float
    preprocess: float
    inference: float
    postprocess: float


@dataclass
class Person:
    """One person's keypoints in the image's own pixels, and where the crop came from."""

    points: np.ndarray  # (K, 2) float64 x, y: pixel centres at integers, (0, 0) the top-left pixel
    scores: np.ndarray  # (K,) float32 heatmap peaks
    box: Box  # the person box (pixel edges) the crop was grown from; the whole image for ``whole_image``
    source: Source
    score: float | None = None  # the detector's, for ``detector``


@dataclass
class Prediction:
    """One image's people, most prominent first, and what they were computed from.

    ``people`` is empty when the detector found nobody; :attr:`primary` is then the whole photo's pose.
    """

    people: list[Person]
    fallback: Person | None  # the whole photo's pose when the detector found nobody
    size: tuple[int, int]  # the oriented image's (width, height)
    timings: StageTimes
    # the oriented image (possibly decoded at reduced scale, see DecodedImage): kept only when asked for
    image: DecodedImage | None = None

    @property
    def primary(self) -> Person:
        """The top-level answer: the most prominent person, else the whole photo's pose."""
        if self.people:
            return self.people[0]
        if self.fallback is None:
            raise ValueError("a prediction without people carries the whole photo's pose")
        return self.fallback

    @property
    def points(self) -> np.ndarray:
        return self.primary.points

    @property
    def scores(self) -> np.ndarray:
        return self.primary.scores

    def decoded(self) -> DecodedImage:
        """The image the keypoints were computed on (predict with ``keep_images=True``)."""
        if self.image is None:
            raise ValueError("the image was not kept: predict with keep_images=True")
        return self.image


@dataclass(frozen=True)
class _Crop:
    image: int  # index of the upload
    affine: Affine
    box: Box
    source: Source
    score: float | None


@dataclass
class _Prepared:
    sizes: list[tuple[int, int]] = field(default_factory=list)
    crops: list[_Crop] = field(default_factory=list)
    decode_ms: list[float] = field(default_factory=list)
    detect_ms: list[float] = field(default_factory=list)
    preprocess_ms: float = 0.0
    images: list[DecodedImage] = field(default_factory=list)  # kept for the caller
    batch: np.ndarray | None = None


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


@contextmanager
def _releasing_on_error(prepared: _Prepared) -> Iterator[None]:
    """Give the kept images' decode budget back if the request fails before the caller gets them."""
    try:
        yield
    except BaseException:
        for image in prepared.images:
            image.release()
        raise


class Pipeline:
    """Finds the people of each image, runs their crops through the model and maps the keypoints back."""

    def __init__(
        self,
        info: ModelInfo,
        inference: Inference,
        decoder: Decoder,
        detector: PersonDetector | None = None,
        max_people: int = DEFAULT_MAX_PEOPLE,
        max_crops: int = DEFAULT_MAX_CROPS,
    ) -> None:
        meta = info.metadata
        self.info = info
        self.inference = inference
        self.decoder = decoder  # pixel limit, threads, memory budget, worker processes (service.imaging.decode)
        self.detector = detector  # None: one pose per image, of the whole photo letterboxed
        self.max_people = max_people
        self.max_crops = max_crops
        self.codec = HeatmapCodec(meta.input_size, meta.heatmap_stride)
        self.layout = meta.layout

    # ------------------------------------------------------------------ entry points
    async def predict_uploads(
        self, uploads: Sequence[Upload], options: PredictOptions, keep_images: bool = False
    ) -> list[Prediction]:
        """Bytes -> predictions, one per upload, in order (one model call for all their people).

        Each upload is decoded, its people found and cropped into the model input, and its pixels dropped
        before the next is decoded, so a batch holds one full-size decode at a time; ``keep_images`` keeps them
        (in :attr:`Prediction.image`) for a caller that draws on them, and that must
        :meth:`~DecodedImage.release` them (their share of the decode budget) when done.
        """
        prepare = lambda: self._prepare(uploads, options, keep_images)  # noqa: E731
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

    def rereader(self, upload: Upload) -> Callable[[tuple[int, int]], DecodedImage]:
        """``reread`` for :func:`service.imaging.overlay.overlay_picture`: the upload decoded again, with at least
        the size asked for, under the pipeline's limits, budget and workers (released once drawn)."""
        return lambda size: self.decoder.read(upload.data, upload.content_type, size)

    def plan(self, size: tuple[int, int], options: PredictOptions, box: Box | None = None) -> Affine:
        """The image -> input map of one crop: ``box`` (grown, as a ``bbox``), else the whole image."""
        return plan(size, self.codec.input_size, options.resize, box)

    # ------------------------------------------------------------------ stages
    def _prepare(self, uploads: Sequence[Upload], options: PredictOptions, keep: bool) -> _Prepared:
        # Room for the most crops this request can have, and their mirror images: np.zeros maps pages lazily, so
        # only the slots written are ever resident
        per_image = 1 if options.bbox is not None or self.detector is None else self._people_cap(options)
        capacity = max(len(uploads), min(self.max_crops, len(uploads) * per_image))  # each image has its person
        batch = np.zeros(((2 if options.flip else 1) * capacity, 3, *self.codec.input_size), np.float32)
        prepared = _Prepared()
        try:
            for index, upload in enumerate(uploads):
                reserved = len(uploads) - index - 1  # every later image keeps at least one crop
                try:
                    self._prepare_one(index, upload, options, keep, prepared, batch, capacity - reserved)
                except PoseError as exc:
                    if len(uploads) > 1:  # which file of a batch (0-based, as the results are ordered)
                        name = f" ({upload.filename!r})" if upload.filename else ""
                        raise exc.about(f"file {index}{name}") from None
                    raise
        except BaseException:
            for image in prepared.images:
                image.release()
            raise
        start = time.perf_counter()
        n = len(prepared.crops)
        if options.flip:
            batch[n : 2 * n] = batch[:n, :, :, ::-1]
        prepared.batch = batch[: (2 if options.flip else 1) * n]
        prepared.preprocess_ms += _ms(start)
        return prepared

    def _people_cap(self, options: PredictOptions) -> int:
        return min(options.max_people or self.max_people, self.max_people)

    def _prepare_one(
        self,
        index: int,
        upload: Upload,
        options: PredictOptions,
        keep: bool,
        prepared: _Prepared,
        batch: np.ndarray,
        budget: int,
    ) -> None:
        start = time.perf_counter()
        opened = self.decoder.open(upload.data, upload.content_type)
        image = self.decoder.decode(opened, self._decode_size(opened.size, opened.orientation is not None, options))
        try:
            prepared.decode_ms.append(_ms(start))
            crops, detect_ms = self._people(index, image, options)
            prepared.detect_ms.append(detect_ms)
            room = max(1, budget - len(prepared.crops))
            start = time.perf_counter()
            for crop in crops[:room]:
                resample_into(image.image, crop.affine, batch[len(prepared.crops)], image.reduction, image.size)
                prepared.crops.append(crop)
            prepared.preprocess_ms += _ms(start)
            prepared.sizes.append(image.size)
        finally:
            if keep:
                prepared.images.append(image)
            else:
                image.release()

    def _decode_size(self, size: tuple[int, int], known: bool, options: PredictOptions) -> tuple[int, int] | None:
        """The least (width, height) the decode needs (a JPEG's header knows its size before decoding)."""
        if not known:
            return None
        if options.bbox is not None or self.detector is None:  # one crop, known now
            return draft_size(size, self.plan(size, options, options.bbox))
        scale = min(1.0, DETECT_DECODE_SIDE / max(size))
        return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))

    def _people(self, index: int, image: DecodedImage, options: PredictOptions) -> tuple[list[_Crop], float]:
        """The crops of one image (its ``bbox``, else each person the detector finds, else the whole photo) and
        the detector's milliseconds (0 when it did not run)."""
        size = image.size
        if options.bbox is not None:
            return [_Crop(index, self.plan(size, options, options.bbox), options.bbox, "bbox", None)], 0.0
        detect_ms = 0.0
        if self.detector is not None:
            start = time.perf_counter()
            found = self.detector.detect(image, self._people_cap(options))
            detect_ms = _ms(start)
            if found:
                crops = [_Crop(index, self.plan(size, options, d.box), d.box, "detector", d.score) for d in found]
                return crops, detect_ms
        whole = (0.0, 0.0, float(size[0]), float(size[1]))
        return [_Crop(index, self.plan(size, options), whole, "whole_image", None)], detect_ms

    def _postprocess(
        self, prepared: _Prepared, heatmaps: np.ndarray, inference_ms: float, options: PredictOptions
    ) -> list[Prediction]:
        """Heatmaps -> keypoints in image pixels, through each crop's exact inverse, grouped by image."""
        start = time.perf_counter()
        n = len(prepared.crops)
        if options.flip:
            heatmaps = 0.5 * (heatmaps[:n] + flip_heatmaps(heatmaps[n:], self.layout.flip_index))
        coords, scores = self.codec.decode(heatmaps, options.refine)
        people: list[list[Person]] = [[] for _ in prepared.sizes]
        for crop, xy, score in zip(prepared.crops, coords, scores, strict=True):
            people[crop.image].append(Person(crop.affine.to_image(xy), score, crop.box, crop.source, crop.score))
        postprocess_ms = _ms(start)
        predictions = []
        for i, size in enumerate(prepared.sizes):
            found = people[i]
            fallback = found.pop() if found and found[0].source == "whole_image" and self.detector else None
            timings = StageTimes(
                prepared.decode_ms[i], prepared.detect_ms[i], prepared.preprocess_ms, inference_ms, postprocess_ms
            )
            image = prepared.images[i] if prepared.images else None
            predictions.append(Prediction(found, fallback, size, timings, image))
        return predictions


def people_marks(prediction: Prediction) -> list[Marks]:
    """What a picture of ``prediction`` draws: each person's box and skeleton, else the whole photo's skeleton."""
    if not prediction.people:
        return [marks(prediction.points, prediction.scores)]
    return [marks(p.points, p.scores, p.box if p.source != "whole_image" else None) for p in prediction.people]


def build_pipeline(
    engine: Engine,
    settings: Settings,
    inference: Inference | None = None,
    workers: DecodeWorkers | None = None,
    detector: PersonDetector | None = None,
) -> Pipeline:
    """The service's pipeline for ``engine``: the decoder of ``settings`` (with ``workers`` for costly decodes, if
    given: :func:`service.imaging.decode.start_workers`), ``detector`` for the photos sent without a box, direct
    model calls unless ``inference`` says otherwise. The server, the render command line and the bench all build
    theirs here."""
    decoder = Decoder.from_settings(settings, workers)
    run = inference or DirectInference(engine.run)
    return Pipeline(engine.info, run, decoder, detector, settings.max_people, settings.max_crops)
