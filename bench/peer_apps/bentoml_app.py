"""BentoML serving the pose model, as its documentation shows (a benchmark peer).

A ``@bentoml.service`` class with one worker and an image API: BentoML hands the upload (multipart field
``file``) over as a Pillow image.

Run: ``PEER_MODEL_PATH=weights/default.onnx bentoml serve bench.peer_apps.bentoml_app:PoseService --port 8003``
"""

from __future__ import annotations

import os

import bentoml
from PIL.Image import Image

from bench.peer_apps.pose_onnx import PoseModel


@bentoml.service(workers=1)
class PoseService:
    def __init__(self) -> None:
        self.model = PoseModel(os.environ["PEER_MODEL_PATH"])

    @bentoml.api
    def predict(self, file: Image) -> dict:
        x, box = self.model.letterbox(file)
        return self.model.keypoints(self.model.heatmaps(x[None])[0], box)
