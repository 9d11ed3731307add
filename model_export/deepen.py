"""`python -m model_export deepen`: more stacks for a trained model, starting from the same predictions.

Each new stack is a copy of the last one, and the merge convolutions that feed it (the previous last
stack's ``merge_features`` and ``merge_heatmaps``, which a last stack lacks) start at zero. The trunk
reaching the new stack is then exactly the trunk that reached the copied one, so the deepened network's
last heatmaps equal the original's: fine-tuning starts from the trained model's accuracy instead of a
random stack's (function-preserving growth, as in Net2Net's deeper networks, Chen et al., ICLR 2016).
The merges' gradients are not zero, so training moves them off zero at once.

CLI: ``python -m model_export deepen --checkpoint CKPT --stacks 3 --out DEEPER.pt``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import torch

from model_export.checkpoint import CheckpointError, TrainingCheckpoint
from model_export.model import StackedHourglass

MERGES = ("merge_features", "merge_heatmaps")


def deepen_state(
    state: dict[str, torch.Tensor], config: dict[str, int], stacks: int
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """``(state dict, config)`` of the network with ``stacks`` stacks that computes what ``state`` computes.

    Raises ValueError unless ``stacks`` is more than ``config["stacks"]``.
    """
    old = int(config["stacks"])
    if stacks <= old:
        raise ValueError(f"--stacks must be more than the checkpoint's {old}, got {stacks}")
    grown_config = {**config, "stacks": stacks}
    grown = StackedHourglass(**grown_config).state_dict()
    last = f"stages.{old - 1}."
    for key, value in state.items():
        grown[key] = value.clone()
        if key.startswith(last):
            for new in range(old, stacks):
                grown[f"stages.{new}.{key[len(last) :]}"] = value.clone()
    for stack in range(old - 1, stacks - 1):
        for merge in MERGES:
            for part in ("weight", "bias"):
                grown[f"stages.{stack}.{merge}.{part}"].zero_()
    return grown, grown_config


def deepen(checkpoint: TrainingCheckpoint, stacks: int) -> TrainingCheckpoint:
    """A weights-only checkpoint of ``checkpoint`` deepened to ``stacks`` (for ``train --init``)."""
    state, config = deepen_state(checkpoint.model, checkpoint.config, stacks)
    return replace(checkpoint.weights_only(), model=state, config=config, step=0, epoch=0, batch_in_epoch=0, best=-1.0)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="CKPT", help="a training checkpoint (.pt)")
    parser.add_argument("--stacks", type=int, required=True, help="stacks of the deepened network")
    parser.add_argument("--out", required=True, metavar="OUT", help="where to write the deepened weights (.pt)")


def run(args: argparse.Namespace) -> int:
    try:
        grown = deepen(TrainingCheckpoint.read(args.checkpoint), args.stacks)
    except (CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    grown.save(args.out)
    print(f"wrote {args.out}: {grown.config['stacks']} stacks, the last copied, its merges at zero")
    return 0
