#!/usr/bin/env bash
# The original TF.js person detector's outputs on the committed test photo, for tests/test_person_detector.py:
# tests/data/person_detector_reference.npz. Needs the npm registry (TensorFlow.js 4.22.0, its pure-JavaScript CPU
# backend) and the TF.js files of scripts/fetch_detector.sh.
#   scripts/detector_reference.sh [TFJS_DIR]        (default: the folder fetch_detector.sh fills)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
TFJS_DIR=${1:-${DETECTOR_CACHE:-$HOME/.cache/hourglass-serve/nanodet}}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm install --silent --no-audit --no-fund @tensorflow/tfjs@4.22.0 >/dev/null)
"$PY" - "$work" <<'PY'
import sys
from pathlib import Path

import numpy as np

from model_export.person_detector import MEAN_BGR, STD_BGR
from service.imaging.decode import open_image, decode_rgb
from service.inference.detector import PersonDetector
from service.inference.runtime import SessionOptions
from pose.detection import DetectionOptions

work = Path(sys.argv[1])
detector = PersonDetector.load("weights/person_detector.onnx", DetectionOptions(), SessionOptions("onnxruntime"))
photo = Path("tests/data/000000000785.jpg").read_bytes()
batch, _ = detector.prepare(decode_rgb(open_image(photo, 50_000_000)))
graph_input = (batch[:, ::-1] * 255.0 - np.reshape(MEAN_BGR, (1, 3, 1, 1))) / np.reshape(STD_BGR, (1, 3, 1, 1))
np.ascontiguousarray(graph_input, np.float32).tofile(work / "input.f32")
(work / "side").write_text(str(batch.shape[2]))
PY
cp scripts/tfjs_run.mjs "$work/"
side=$(cat "$work/side")
shapes=$(cd "$work" && node tfjs_run.mjs "$TFJS_DIR/nanodet.json" input.f32 float32 "1,3,$side,$side" \
  Identity,Identity_1,Identity_2,Identity_3,Identity_4,Identity_5 out.f32)
"$PY" - "$work" "$shapes" <<'PY'
import json
import sys
from pathlib import Path

import numpy as np

work, info = Path(sys.argv[1]), json.loads(sys.argv[2])
flat = np.fromfile(work / "out.f32", np.float32)
outputs, offset = [], 0
for shape in info["shapes"]:
    size = int(np.prod(shape))
    outputs.append(flat[offset : offset + size].reshape(shape)[0])
    offset += size
scores = np.concatenate([o[:, 0] for o in outputs[:3]])  # the person class of each stride's points
distances = np.concatenate(outputs[3:]).reshape(len(scores), 4, -1)
np.savez_compressed(
    "tests/data/person_detector_reference.npz",
    scores=scores,
    distances=distances,
    source=np.array(f"TensorFlow.js {info['tfjs']} ({info['backend']} backend), models/nanodet.json"),
)
print(f"wrote tests/data/person_detector_reference.npz: {len(scores)} points, TF.js {info['tfjs']} {info['backend']}")
PY
