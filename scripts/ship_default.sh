#!/usr/bin/env bash
# Turn a training checkpoint of scripts/train_default.sh into the shipped default model:
#   weights/default.pt    the checkpoint itself (PyTorch twin for the benchmarks; `--resume` continues training from it)
#   weights/default.onnx  the service's model (ONNX contract, provenance in its metadata)
#   weights/default.json  its held-out synthetic PCKh (the model card's numbers and the floor of tests/test_default_model.py)
# Usage: scripts/ship_default.sh [CHECKPOINT]   (default runs/default/best.pt)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
CKPT="${1:-runs/default/best.pt}"
[ -f "$CKPT" ] || { echo "error: checkpoint $CKPT not found (run scripts/train_default.sh first)" >&2; exit 1; }

[ "$CKPT" -ef weights/default.pt ] || cp "$CKPT" weights/default.pt
"$PY" -m model_export export --checkpoint weights/default.pt --out weights/default.onnx
"$PY" -m model_export evaluate --onnx weights/default.onnx --dataset synthetic --json weights/default.json
