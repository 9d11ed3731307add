"""LitServe serving the pose model, as its documentation shows (a benchmark peer).

A ``LitAPI`` with ``setup``, ``decode_request``, ``predict`` and ``encode_response``; one worker on the CPU.
``PEER_MAX_BATCH`` > 1 turns on LitServe's own batching (``max_batch_size``, ``batch_timeout``
``PEER_BATCH_TIMEOUT_S``), its documented way of serving concurrent load.

Run: ``PEER_MODEL_PATH=weights/default.onnx python -m bench.peer_apps.litserve_app --port 8002``
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import litserve as ls
import numpy as np

from bench.peer_apps.pose_onnx import Letterbox, PoseModel

Prepared = tuple[np.ndarray, Letterbox]  # an input (or its heatmaps) and where the image sits in it


class PoseAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.model = PoseModel(os.environ["PEER_MODEL_PATH"])

    # no annotation on ``request``: LitServe builds the endpoint's request model from it (``Any`` would make it a
    # query parameter); unannotated, the multipart form arrives whole and the upload is its ``file`` field
    def decode_request(self, request) -> Prepared:
        return self.model.preprocess(request["file"].file.read())

    def batch(self, inputs: list[Prepared]) -> tuple[np.ndarray, list[Letterbox]]:
        return np.stack([x for x, _ in inputs]), [box for _, box in inputs]

    def unbatch(self, output: tuple[np.ndarray, list[Letterbox]]) -> list[Prepared]:
        heatmaps, boxes = output
        return list(zip(heatmaps, boxes, strict=True))

    def predict(self, x: Any) -> Any:
        if self.max_batch_size > 1:  # batched: (inputs, boxes) from batch()
            inputs, boxes = x
            return self.model.heatmaps(inputs), boxes
        tensor, box = x
        return self.model.heatmaps(tensor[None])[0], box

    def encode_response(self, output: Prepared) -> dict:
        heatmaps, box = output
        return self.model.keypoints(heatmaps, box)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args()
    max_batch = int(os.environ.get("PEER_MAX_BATCH", "1"))
    timeout = float(os.environ.get("PEER_BATCH_TIMEOUT_S", "0.005"))
    api = PoseAPI(max_batch_size=max_batch, batch_timeout=timeout if max_batch > 1 else 0.0)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=120)
    server.run(host=args.host, port=args.port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
