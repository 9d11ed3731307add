"""The pose model as a framework user would wrap it: Pillow, numpy and ONNX Runtime, nothing else.

Shared by the LitServe and BentoML peers so that both do the same work: the upload decoded at full size
with Pillow, letterboxed to the model input (resize, then centred on a black square), one ONNX Runtime
call on the CPU with default session options, each joint's argmax shifted a quarter heatmap pixel toward
its higher neighbour, and the points mapped back to the image's pixels.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
from PIL import Image


@dataclass(frozen=True)
class Letterbox:
    """Where the image sits in the model input: per-axis scale and the top-left padding (input pixels)."""

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    width: int
    height: int

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Input-pixel centres ``(K, 2)`` -> image-pixel centres (top-left pixel centre 0)."""
        x = (points[:, 0] + 0.5 - self.pad_x) / self.scale_x - 0.5
        y = (points[:, 1] + 0.5 - self.pad_y) / self.scale_y - 0.5
        return np.stack([x, y], axis=1)


class PoseModel:
    """One ONNX Runtime session of a pose model exported by ``python -m model_export export``."""

    def __init__(self, path: str) -> None:
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.names: list[str] = json.loads(meta["keypoint_names"])
        self.input_h, self.input_w = json.loads(meta["input_size"])
        self.stride = int(meta["heatmap_stride"])
        self.input_name = self.session.get_inputs()[0].name

    def preprocess(self, data: bytes) -> tuple[np.ndarray, Letterbox]:
        """Upload bytes -> a ``(3, H, W)`` float32 input in [0, 1] and its letterbox."""
        return self.letterbox(Image.open(io.BytesIO(data)))

    def letterbox(self, image: Image.Image) -> tuple[np.ndarray, Letterbox]:
        image = image.convert("RGB")
        width, height = image.size
        scale = min(self.input_w / width, self.input_h / height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        canvas = Image.new("RGB", (self.input_w, self.input_h))
        pad_x, pad_y = (self.input_w - new_w) // 2, (self.input_h - new_h) // 2
        canvas.paste(image.resize((new_w, new_h), Image.Resampling.BILINEAR), (pad_x, pad_y))
        x = np.asarray(canvas, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return x, Letterbox(new_w / width, new_h / height, pad_x, pad_y, width, height)

    def heatmaps(self, batch: np.ndarray) -> np.ndarray:
        """``(N, 3, H, W)`` -> the last stack's heatmaps ``(N, K, h, w)``."""
        return self.session.run(None, {self.input_name: batch})[0]

    def keypoints(self, heatmaps: np.ndarray, box: Letterbox) -> dict:
        """One image's heatmaps ``(K, h, w)`` -> the response JSON (keypoints in the image's pixels)."""
        k, h, w = heatmaps.shape
        flat = heatmaps.reshape(k, -1)
        idx = flat.argmax(axis=1)
        ys, xs = np.divmod(idx, w)
        peak = flat[np.arange(k), idx]
        fx, fy = xs.astype(np.float64), ys.astype(np.float64)
        for j in range(k):
            hm, x, y = heatmaps[j], xs[j], ys[j]
            if 0 < x < w - 1:
                fx[j] += 0.25 * np.sign(hm[y, x + 1] - hm[y, x - 1])
            if 0 < y < h - 1:
                fy[j] += 0.25 * np.sign(hm[y + 1, x] - hm[y - 1, x])
        on_input = np.stack([(fx + 0.5) * self.stride - 0.5, (fy + 0.5) * self.stride - 0.5], axis=1)
        points = box.to_image(on_input)
        keypoints = [
            {"name": name, "x": float(px), "y": float(py), "score": float(score)}
            for name, (px, py), score in zip(self.names, points, peak, strict=True)
        ]
        return {"keypoints": keypoints, "image": {"width": box.width, "height": box.height}}
