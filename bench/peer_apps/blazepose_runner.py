"""BlazePose GHUM's landmark models on given person crops, under LiteRT (run in the ``litert`` peer venv).

Started by :mod:`bench.accuracy_speed` with the crops (``(N, H, W, 3)`` uint8, the service's model inputs)
and the ``.tflite`` files; it then answers one JSON command per line on stdin, one JSON reply per line:

- ``{"op": "predict", "model": NAME, "out": PATH}``: every crop's 33 landmarks, ``(N, 33, 2)`` float32
  (x, y) in input-pixel centres, saved to ``PATH`` (``.npy``); replies ``{"ok": true}``;
- ``{"op": "time", "model": NAME, "start": I, "calls": K}``: seconds of ``K`` model calls (input copied in,
  ``invoke``, landmarks copied out) on crops ``I, I+1, ...``; replies ``{"seconds": [...]}``;
- ``{"op": "quit"}``.

Only numpy and ``ai_edge_litert``: nothing of the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter

LANDMARKS = 33  # BlazePose GHUM's body landmarks; the model outputs 39 (x, y, z, visibility, presence)
VALUES = 5


class Landmarker:
    def __init__(self, path: str, threads: int) -> None:
        self.interpreter = Interpreter(model_path=path, num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        outputs = self.interpreter.get_output_details()
        # the landmark tensor is the (1, 39 * 5) one
        self.output = next(o["index"] for o in outputs if int(np.prod(o["shape"])) == 39 * VALUES)

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input, crop)
        self.interpreter.invoke()
        values = self.interpreter.get_tensor(self.output).reshape(-1, VALUES)
        return values[:LANDMARKS, :2] - 0.5  # pixel-edge (0..W) -> pixel-centre coordinates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--crops", required=True, help=".npy of (N, H, W, 3) uint8 crops")
    parser.add_argument("--model", action="append", required=True, help="NAME=PATH of a .tflite landmark model")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    crops = np.load(args.crops)
    inputs = [(c[None].astype(np.float32) / np.float32(255.0)) for c in crops]
    models = {}
    for spec in args.model:
        name, _, path = spec.partition("=")
        models[name] = Landmarker(path, args.threads)
    print(json.dumps({"ready": len(inputs)}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "quit":
            break
        model = models[command["model"]]
        if command["op"] == "predict":
            np.save(command["out"], np.stack([model(x) for x in inputs]).astype(np.float32))
            reply: dict[str, object] = {"ok": True}
        elif command["op"] == "time":
            seconds = []
            for k in range(int(command["calls"])):
                x = inputs[(int(command["start"]) + k) % len(inputs)]
                t0 = time.perf_counter()
                model(x)
                seconds.append(time.perf_counter() - t0)
            reply = {"seconds": seconds}
        else:
            reply = {"error": f"unknown op {command['op']!r}"}
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
