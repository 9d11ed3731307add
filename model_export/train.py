"""`python -m model_export train`: train a stacked hourglass the way the paper did.

MSE on every stack's heatmaps (intermediate supervision), weighted by joint
visibility; RMSprop at 2.5e-4 (Adam optional) with step decay; optional mixed
precision (fp16/bf16 on CUDA, bf16 on CPU) and gradient clipping. Validation
(loss and PCKh@0.5 with the service's decoder) after every epoch; a CSV log,
TensorBoard, ``last.pt`` every epoch and every ``--checkpoint-every`` steps,
``best.pt`` on the best PCKh. ``--resume`` continues exactly where a
checkpoint stopped, mid-epoch included. Under ``torchrun`` it runs
DistributedDataParallel (gloo on CPU, nccl on CUDA).

This module is the command line only: the flags become a :class:`~model_export.training.config.TrainConfig`,
and :mod:`model_export.training` runs it.
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.distributed as dist

from model_export.checkpoint import CheckpointError
from model_export.data import mpii, sources
from model_export.training.config import TrainConfig
from model_export.training.context import setup_context
from model_export.training.data import DatasetError
from model_export.training.loop import train


# ---------------------------------------------------------------- CLI
def configure(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset",
        default="synthetic",
        help="synthetic, mpii (full MPII with its validation split), or a weighted mix of "
        f"{', '.join(sources.MIX_SOURCES)}, e.g. lsp:2,lspet:5,mpii:2,synthetic:0.5 (weights: shares of each epoch; "
        "validation: LSP im0901-im1000, PCK@0.2)",
    )
    data.add_argument("--epoch-size", type=int, default=8000, help="training samples per epoch (synthetic, mixes)")
    data.add_argument("--val-size", type=int, default=400, help="synthetic held-out figures scored per epoch")
    data.add_argument("--data-seed", type=int, default=0, help="base seed of the synthetic generator")
    data.add_argument("--workers", type=int, default=1, help="DataLoader worker processes")
    mpii.add_arguments(parser)
    sources.add_arguments(parser)

    model = parser.add_argument_group("model")
    model.add_argument("--stacks", type=int, default=2)
    model.add_argument("--features", type=int, default=64)
    model.add_argument("--joints", type=int, default=16)
    model.add_argument("--order", type=int, default=4)
    model.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="square input side in pixels, a multiple of 64 (default 256; on --resume, the checkpoint's unless given)",
    )
    model.add_argument(
        "--init", metavar="CKPT", help="start from these weights (a training checkpoint) with a fresh optimiser"
    )

    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=int, default=16, help="per process")
    opt.add_argument("--epochs", type=int, default=10)
    opt.add_argument("--max-steps", type=int, default=0, help="stop after this many optimiser steps (0: no limit)")
    opt.add_argument(
        "--max-minutes",
        type=float,
        default=0.0,
        help="stop cleanly (validate, save last.pt) after this much wall-clock training time (0: no limit)",
    )
    opt.add_argument("--optimizer", choices=("rmsprop", "adam"), default="rmsprop")
    opt.add_argument("--lr", type=float, default=2.5e-4)
    opt.add_argument(
        "--lr-milestones", default="", help="comma-separated steps at which the lr is multiplied by --lr-gamma"
    )
    opt.add_argument("--lr-gamma", type=float, default=0.1)
    opt.add_argument("--weight-decay", type=float, default=0.0)
    opt.add_argument("--grad-clip", type=float, default=0.0, help="clip the gradient norm to this (0: off)")
    opt.add_argument(
        "--amp", action="store_true", help="mixed precision: bf16 autocast on CPU, fp16 (or --amp-dtype) on CUDA"
    )
    opt.add_argument("--amp-dtype", choices=("auto", "fp16", "bf16"), default="auto")
    opt.add_argument(
        "--channels-last", action="store_true", help="channels-last memory format (faster with --amp on CPU)"
    )
    opt.add_argument("--seed", type=int, default=0)

    run_group = parser.add_argument_group("run")
    run_group.add_argument("--out", default="runs/train", help="output folder: checkpoints, log.csv, tensorboard/")
    run_group.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint (e.g. OUT/last.pt)")
    run_group.add_argument(
        "--checkpoint-every", type=int, default=500, help="also save last.pt every N steps (0: per epoch only)"
    )
    run_group.add_argument("--log-every", type=int, default=50, help="CSV/TensorBoard training row every N steps")
    run_group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run_group.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    run_group.add_argument("--export-onnx", metavar="PATH", help="export the best checkpoint to ONNX at the end")
    run_group.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")


def run(args: argparse.Namespace) -> int:
    try:
        config = TrainConfig.from_namespace(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    ctx = setup_context(config.device)
    try:
        train(config, ctx)
    except (CheckpointError, DatasetError) as exc:  # --resume / --init / data paths: a clear line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if ctx.distributed and dist.is_initialized():
            dist.destroy_process_group()
    return 0
