"""Response bodies (pydantic), with the examples shown in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.inference.pipeline import Prediction


class Keypoint(BaseModel):
    name: str = Field(description="Joint name, in the model's order.")
    x: float = Field(
        description="Column in the uploaded image's pixels (EXIF orientation applied; top-left pixel centre = 0)."
    )
    y: float = Field(description="Row in the uploaded image's pixels.")
    score: float = Field(description="Heatmap value at the peak (confidence, about 0..1).")


class ImageSize(BaseModel):
    width: int
    height: int


class ModelRef(BaseModel):
    name: str
    version: str


class Timings(BaseModel):
    decode: float = Field(description="Reading the image bytes into RGB pixels, ms.")
    preprocess: float = Field(description="Crop/letterbox and resize into the input tensor, ms.")
    inference: float = Field(description="Model run (including any queueing for a batch), ms.")
    postprocess: float = Field(description="Heatmaps to keypoints in image pixels, ms.")


_EXAMPLE: dict[str, Any] = {
    "keypoints": [
        {"name": "right_ankle", "x": 412.3, "y": 377.9, "score": 0.83},
        {"name": "right_knee", "x": 405.1, "y": 318.4, "score": 0.88},
    ],
    "image": {"width": 640, "height": 425},
    "model": {"name": "default", "version": "3f2a9c1b7d4e"},
    "timings_ms": {"decode": 2.1, "preprocess": 0.6, "inference": 41.7, "postprocess": 0.3},
}


class PoseResult(BaseModel):
    """Keypoints of the one person in the image (or in ``bbox``), one entry per joint."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    keypoints: list[Keypoint]
    image: ImageSize
    model: ModelRef
    timings_ms: Timings

    @classmethod
    def from_prediction(cls, prediction: Prediction, names: tuple[str, ...], model: ModelRef) -> PoseResult:
        """The response body for one prediction (built without re-validating the arrays' floats)."""
        keypoints = [
            Keypoint.model_construct(name=name, x=xy[0], y=xy[1], score=score)
            for name, xy, score in zip(names, prediction.points.tolist(), prediction.scores.tolist(), strict=True)
        ]
        t = prediction.timings
        timings = Timings.model_construct(
            decode=t.decode, preprocess=t.preprocess, inference=t.inference, postprocess=t.postprocess
        )
        width, height = prediction.size
        return cls.model_construct(
            keypoints=keypoints, image=ImageSize(width=width, height=height), model=model, timings_ms=timings
        )


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
                    "providers": ["CPUExecutionProvider"],
                    "architecture": {"stacks": 2, "features": 64, "order": 4},
                    "provenance": {"source": "model_export train"},
                }
            ]
        }
    )

    name: str
    version: str
    keypoint_names: list[str]
    skeleton: list[tuple[int, int]]
    flip_pairs: list[tuple[int, int]]
    input_size: tuple[int, int] = Field(description="(height, width) of the network input.")
    heatmap_stride: int
    heatmap_size: tuple[int, int] = Field(description="(height, width) of the heatmaps.")
    providers: list[str] = Field(description="Active ONNX Runtime execution providers, in priority order.")
    architecture: dict[str, Any]
    provenance: dict[str, Any]


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
