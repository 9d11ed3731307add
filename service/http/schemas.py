"""Response bodies (pydantic), with the examples shown in the OpenAPI schema."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from service.inference.pipeline import Person, Prediction

# Two integers. Pydantic writes ``tuple[int, int]`` as ``prefixItems``, valid OpenAPI 3.1 that common checkers
# (schemathesis among them) refuse inside ``items``; this is the same constraint in the form every one reads.
IntPair = Annotated[
    tuple[int, int], WithJsonSchema({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2})
]


# Precision of the answers: a hundredth of a pixel (the decoders' sub-pixel steps are a quarter of a heatmap
# cell, 1 pixel of the network input, so finer digits carry nothing) and four decimals of a score.
COORD_DECIMALS = 2
SCORE_DECIMALS = 4


class Keypoint(BaseModel):
    name: str = Field(description="Joint name, in the model's order.")
    x: float = Field(
        description="Column in the uploaded image's pixels (EXIF orientation applied; top-left pixel centre = 0), "
        f"to {COORD_DECIMALS} decimals. May lie outside the image (a joint the model places beyond the frame)."
    )
    y: float = Field(description=f"Row in the uploaded image's pixels, to {COORD_DECIMALS} decimals.")
    score: float = Field(
        description=f"Heatmap value at the peak (confidence, about 0..1), to {SCORE_DECIMALS} decimals."
    )


class ImageSize(BaseModel):
    width: int
    height: int


class ModelRef(BaseModel):
    name: str
    version: str


class Timings(BaseModel):
    decode: float = Field(description="Reading the image bytes into RGB pixels, ms.")
    detect: float = Field(description="Finding the people (the person detector; 0 with `bbox` or no detector), ms.")
    preprocess: float = Field(description="Crop/letterbox and resize into the input tensor, ms.")
    inference: float = Field(description="Model run (including any queueing for a batch), ms.")
    postprocess: float = Field(description="Heatmaps to keypoints in image pixels, ms.")


_KEYPOINTS_EXAMPLE = [
    {"name": "right_ankle", "x": 412.3, "y": 377.9, "score": 0.83},
    {"name": "right_knee", "x": 405.1, "y": 318.4, "score": 0.88},
]
_EXAMPLE: dict[str, Any] = {
    "keypoints": _KEYPOINTS_EXAMPLE,
    "people": [
        {
            "box": {"x": 268.1, "y": 33.4, "width": 214.6, "height": 336.8},
            "score": 0.61,
            "source": "detector",
            "keypoints": _KEYPOINTS_EXAMPLE,
        }
    ],
    "image": {"width": 640, "height": 425},
    "model": {"name": "default", "version": "3f2a9c1b7d4e"},
    "timings_ms": {"decode": 2.1, "detect": 31.0, "preprocess": 0.6, "inference": 41.7, "postprocess": 0.3},
}


class Box(BaseModel):
    x: float = Field(description="Left edge in image pixels (the image spans 0..width).")
    y: float = Field(description="Top edge in image pixels.")
    width: float
    height: float


class PersonResult(BaseModel):
    """One person: the box its crop was grown from, and its keypoints."""

    box: Box = Field(
        description="Person box in image pixels: the detector's, the request's `bbox`, or the whole image."
    )
    score: float | None = Field(
        description="The person detector's score (about 0..1); null for `bbox` and the whole image."
    )
    source: Literal["detector", "bbox", "whole_image"] = Field(
        description="`detector`: found by the person detector; `bbox`: the request's box; `whole_image`: the whole "
        "photo letterboxed (the detector is turned off)."
    )
    keypoints: list[Keypoint]

    @classmethod
    def from_person(cls, person: Person, names: tuple[str, ...]) -> PersonResult:
        x, y, w, h = (round(float(v), COORD_DECIMALS) for v in person.box)
        return cls.model_construct(
            box=Box.model_construct(x=x, y=y, width=w, height=h),
            score=None if person.score is None else round(float(person.score), SCORE_DECIMALS),
            source=person.source,
            keypoints=_keypoints(person, names),
        )


def _keypoints(person: Person, names: tuple[str, ...]) -> list[Keypoint]:
    points = np.round(np.asarray(person.points, np.float64), COORD_DECIMALS).tolist()
    scores = np.round(np.asarray(person.scores, np.float64), SCORE_DECIMALS).tolist()
    return [
        Keypoint.model_construct(name=name, x=xy[0], y=xy[1], score=score)
        for name, xy, score in zip(names, points, scores, strict=True)
    ]


class PoseResult(BaseModel):
    """The people in one image, most prominent first (the detector's score times the box's area), and the
    keypoints of the first of them at the top level, as before people were found (an empty `people`: the detector
    found nobody, and `keypoints` are the whole photo's pose, letterboxed, with the low scores that tell so)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    keypoints: list[Keypoint] = Field(description="`people[0]`'s keypoints (the whole photo's when `people` is empty).")
    people: list[PersonResult]
    image: ImageSize
    model: ModelRef
    timings_ms: Timings

    @classmethod
    def from_prediction(cls, prediction: Prediction, names: tuple[str, ...], model: ModelRef) -> PoseResult:
        """The response body for one prediction (built without re-validating the arrays' floats)."""
        t = prediction.timings
        timings = Timings.model_construct(
            decode=t.decode, detect=t.detect, preprocess=t.preprocess, inference=t.inference, postprocess=t.postprocess
        )
        width, height = prediction.size
        return cls.model_construct(
            keypoints=_keypoints(prediction.primary, names),
            people=[PersonResult.from_person(p, names) for p in prediction.people],
            image=ImageSize(width=width, height=height),
            model=model,
            timings_ms=timings,
        )


class EngineDescription(BaseModel):
    """The runtime that computes the model's outputs."""

    engine: str = Field(description="`onnxruntime` or `openvino`.")
    version: str
    precision: str = Field(description="`float32` or `bfloat16` (OpenVINO on a CPU with native bfloat16).")
    device: str = Field(description="`cpu` or `cuda`.")
    processor: str = Field(description="The host CPU's model name.")


class ModelDescription(BaseModel):
    """The served model, from its ONNX metadata."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "default",
                    "version": "3f2a9c1b7d4e",
                    "keypoint_names": ["right_ankle", "right_knee", "..."],
                    "skeleton": [[0, 1], [1, 2]],
                    "flip_pairs": [[0, 5], [1, 4]],
                    "input_size": [256, 256],
                    "heatmap_stride": 4,
                    "heatmap_size": [64, 64],
                    "providers": [],
                    "engine": {
                        "engine": "openvino",
                        "version": "2026.4.1",
                        "precision": "bfloat16",
                        "device": "cpu",
                        "processor": "AMD EPYC",
                    },
                    "architecture": {"stacks": 2, "features": 64, "order": 4},
                    "provenance": {"source": "model_export train"},
                    "detector": {
                        "file": "person_detector.onnx",
                        "input_size": [416, 416],
                        "min_score": 0.3,
                        "first_min_score": 0.15,
                    },
                }
            ]
        }
    )

    name: str
    version: str
    keypoint_names: list[str]
    skeleton: list[IntPair]
    flip_pairs: list[IntPair]
    input_size: IntPair = Field(description="(height, width) of the network input.")
    heatmap_stride: int
    heatmap_size: IntPair = Field(description="(height, width) of the heatmaps.")
    providers: list[str] = Field(
        description="Active ONNX Runtime execution providers, in priority order (empty when OpenVINO runs the model)."
    )
    engine: EngineDescription = Field(description="What runs the model (`POSE_ENGINE`), at which precision, where.")
    architecture: dict[str, Any]
    provenance: dict[str, Any]
    detector: dict[str, Any] | None = Field(
        description="The person detector (file, version, input size, score floors, engine, provenance); null when "
        "it is turned off."
    )


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable error code, e.g. `invalid_image`.")
    message: str


class ErrorResponse(BaseModel):
    """Every error the service returns."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"error": {"code": "invalid_image", "message": "the upload is not a readable image"}}]
        }
    )

    error: ErrorDetail


class Status(BaseModel):
    status: str
