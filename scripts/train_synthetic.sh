#!/usr/bin/env bash
# Trains the synthetic-only model that the real-photo default starts from (weights/synthetic_init.pt):
# 2 stacks x 128 features on the built-in synthetic dataset, batch 32, Adam, mixed precision +
# channels-last, on one GPU (scripts/device_train.sh runs it on a lent GPU machine in time-boxed,
# resumable pieces). Resumable: run it again with `--resume runs/synthetic/last.pt` appended.
# weights/synthetic_init.pt is this command as it stands (10,000 steps, about 17 minutes on one H100,
# data-bound at ~350 images/s on 16 cores; held-out synthetic PCKh@0.5 0.970); --max-minutes pieces
# do not change the trajectory.
# Extra arguments are passed on; later arguments win. Without a GPU add e.g.
# `--device cpu --workers 1 --threads 1` (about 10 images/s on one core; on a shared 2-core
# machine 2 torch threads collapse under contention, 0.9 vs 5.6 images/s).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
exec "$PYTHON" -m model_export train \
  --dataset synthetic --stacks 2 --features 128 --joints 16 --order 4 \
  --batch-size 32 --optimizer adam --lr 1e-3 --lr-milestones 7500,9000 --lr-gamma 0.1 \
  --epochs 1000 --epoch-size 32000 --val-size 512 --max-steps 10000 \
  --amp --channels-last --device cuda --threads 2 --workers 15 --seed 0 --data-seed 0 \
  --checkpoint-every 1000 --log-every 100 \
  --out "${RUN_DIR:-runs/synthetic}" "$@"
