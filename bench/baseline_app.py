"""The peer a user would write without this project (a benchmark fixture, not product code).

Plain FastAPI: read the upload, decode it at full size with Pillow, resize to the model input,
run the PyTorch model eagerly, decode the last stack's heatmaps with a Python loop over joints.
Same weights as the service: ``BASELINE_MODEL_PATH`` names the ONNX file whose PyTorch checkpoint
(same path, ``.pt``) is loaded; unset, the bench's default model pair is used.

Run: ``uvicorn bench.baseline_app:app --host 127.0.0.1 --port 8001``
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from fastapi import FastAPI, File, UploadFile
from PIL import Image

from bench.fixture import bench_model, load_torch_model
from pose.layout import KeypointLayout

_path = os.environ.get("BASELINE_MODEL_PATH")
_model_info = bench_model(onnx_path=Path(_path) if _path else None)
model = load_torch_model(_model_info)
names = KeypointLayout.default_for(_model_info.architecture["joints"]).names
INPUT = 256
STRIDE = 4

app = FastAPI(title="baseline pose service")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
def predict(file: Annotated[UploadFile, File()]) -> dict:
    image = Image.open(io.BytesIO(file.file.read())).convert("RGB")
    width, height = image.size
    resized = image.resize((INPUT, INPUT), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    with torch.no_grad():
        heatmaps = model(x)[0, -1].numpy()
    keypoints = []
    for j in range(heatmaps.shape[0]):
        hm = heatmaps[j]
        y, x_ = divmod(int(hm.argmax()), hm.shape[1])
        fx, fy = float(x_), float(y)
        if 0 < x_ < hm.shape[1] - 1:
            fx += 0.25 * float(np.sign(hm[y, x_ + 1] - hm[y, x_ - 1]))
        if 0 < y < hm.shape[0] - 1:
            fy += 0.25 * float(np.sign(hm[y + 1, x_] - hm[y - 1, x_]))
        px = ((fx + 0.5) * STRIDE - 0.5 + 0.5) * width / INPUT - 0.5
        py = ((fy + 0.5) * STRIDE - 0.5 + 0.5) * height / INPUT - 0.5
        keypoints.append({"name": names[j], "x": px, "y": py, "score": float(hm[y, x_])})
    return {"keypoints": keypoints, "image": {"width": width, "height": height}}
