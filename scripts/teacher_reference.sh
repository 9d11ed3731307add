#!/usr/bin/env bash
# The teacher rebuilt in PyTorch (model_export/teacher.py) against the original MoveNet Thunder graph run by
# TensorFlow.js 4.22.0 (its pure-JavaScript CPU backend), on the skier crop of the committed test photo (COCO's box)
# and on that crop mirrored: prints both outputs' largest differences. Needs npm (the registry).
#   scripts/teacher_reference.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
folder=$(scripts/fetch_teacher.sh)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm install --silent --no-audit --no-fund @tensorflow/tfjs@4.22.0 >/dev/null)
cp scripts/tfjs_run.mjs "$work/"
"$PY" - "$work" "$folder/movenet-thunder.json" <<'PY'
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from model_export.data.augment import warp_image
from pose.geometry import plan

work = Path(sys.argv[1])
photo = np.asarray(Image.open("tests/data/000000000785.jpg").convert("RGB"))
crop = warp_image(photo, plan(photo.shape[1::-1], (256, 256), "letterbox", (280.79, 44.73, 218.7, 346.68)))
for name, image in (("crop", crop), ("mirrored", crop[:, ::-1])):
    np.save(work / f"{name}.npy", np.ascontiguousarray(image))
    np.ascontiguousarray(image, np.int32).tofile(work / f"{name}.i32")
PY
for name in crop mirrored; do
  (cd "$work" && node tfjs_run.mjs "$folder/movenet-thunder.json" "$name.i32" int32 1,256,256,3 Identity \
    "$name.out.f32" >"$name.json" 2>/dev/null)
done
"$PY" - "$work" "$folder/movenet-thunder.json" <<'PY'
import json
import sys
from pathlib import Path

import numpy as np

from model_export.teacher import Teacher

work = Path(sys.argv[1])
teacher = Teacher.movenet(sys.argv[2])
for name in ("crop", "mirrored"):
    info = json.loads((work / f"{name}.json").read_text())
    original = np.fromfile(work / f"{name}.out.f32", np.float32).reshape(17, 3)
    ours = teacher.run(np.load(work / f"{name}.npy"))
    print(
        f"{name}: TF.js {info['tfjs']} ({info['backend']}) against the PyTorch rebuild: largest difference "
        f"{np.abs(ours[:, :2] - original[:, :2]).max():.2e} in y, x (fractions of 256), "
        f"{np.abs(ours[:, 2] - original[:, 2]).max():.2e} in scores; mean score {original[:, 2].mean():.3f}"
    )
PY
