#!/usr/bin/env bash
# Trains the shipped default model (weights/default.onnx): 2 stacks x 64 features on the
# built-in synthetic dataset, bf16 autocast + channels-last on the CPU. One torch thread: on a
# shared 2-core machine OpenMP threads spin against other processes (5.6 img/s at 1 thread
# vs 0.9 img/s at 2 under load); use --threads 2 on an idle machine.
# Resumable: run it again with `--resume runs/default/last.pt` appended to continue.
# The shipped model is this run stopped at a step S: `scripts/train_default.sh --max-steps S`
# reproduces it (--max-steps does not change the trajectory before S).
# Extra arguments are passed on (a GPU user could add e.g. --device cuda --workers 8
# --max-steps 20000 --lr-milestones 15000,18000; later arguments win).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
exec "$PYTHON" -m model_export train \
  --dataset synthetic --stacks 2 --features 64 --joints 16 --order 4 \
  --batch-size 16 --optimizer adam --lr 1e-3 --lr-milestones 6000,8000 --lr-gamma 0.1 \
  --epochs 100 --epoch-size 3200 --val-size 256 --max-steps 10000 \
  --amp --channels-last --threads 1 --workers 1 --seed 0 --data-seed 0 \
  --checkpoint-every 100 --log-every 20 \
  --out "${OUT:-runs/default}" "$@"
