"""One training run's state: how it starts (fresh, from ``--init`` weights, or resumed exactly) and what its
checkpoints hold."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model_export.checkpoint import CheckpointError, TrainingCheckpoint, layout_record
from model_export.data.augment import default_codec
from model_export.model import StackedHourglass
from model_export.provenance import stamp
from model_export.training.config import TrainConfig
from model_export.training.context import Context
from model_export.training.data import ResumableSampler, build_datasets
from model_export.training.loss import amp_dtype
from pose.codec import HeatmapCodec
from pose.layout import KeypointLayout

DEFAULT_INPUT_SIDE = 256


@dataclass
class Run:
    """One training run: its network, optimiser and data, and where training stands."""

    config: TrainConfig
    ctx: Context
    codec: HeatmapCodec
    layout: KeypointLayout
    train_set: Any
    val_set: Any
    sampler: ResumableSampler
    model: StackedHourglass
    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.MultiStepLR
    scaler: torch.amp.GradScaler
    dtype: torch.dtype | None
    provenance: dict[str, Any]
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best: float = -1.0

    @property
    def out(self) -> Path:
        return self.config.out

    def snapshot(self) -> TrainingCheckpoint:
        """What ``last.pt``/``best.pt`` hold: the weights, the joints' layout, and everything an exact resume needs."""
        return TrainingCheckpoint(
            model=self.model.state_dict(),
            config=dict(self.model.config),
            input_size=self.codec.input_size,
            heatmap_stride=self.codec.stride,
            step=self.step,
            epoch=self.epoch,
            batch_in_epoch=self.batch_in_epoch,
            best=self.best,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict(),
            rng=rng_state(),
            provenance=self.provenance,
            args=self.config.record(),
            layout=layout_record(self.layout),
        )


def rng_state() -> dict[str, Any]:
    """Every random generator's state (torch, numpy, Python, CUDA), as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def read_start(config: TrainConfig) -> tuple[TrainingCheckpoint | None, TrainingCheckpoint | None]:
    """``(resume, init)``: the checkpoint to continue exactly, or the one whose weights start a new run."""
    resume = TrainingCheckpoint.read(config.resume) if config.resume else None
    init = TrainingCheckpoint.read(config.init) if config.init and resume is None else None
    return resume, init


def make_optimizer(
    config: TrainConfig, model: nn.Module
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.MultiStepLR]:
    """RMSprop (the paper's) or Adam, with the lr multiplied by ``lr_gamma`` at each milestone step."""
    params, lr, decay = model.parameters(), config.lr, config.weight_decay
    if config.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr, weight_decay=decay)
    else:
        optimizer = torch.optim.RMSprop(params, lr=lr, weight_decay=decay)
    schedule = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(config.lr_milestones), gamma=config.lr_gamma
    )
    return optimizer, schedule


def make_provenance(
    config: TrainConfig, resume: TrainingCheckpoint | None, init: TrainingCheckpoint | None
) -> dict[str, Any]:
    """How this run was started (and, on resume, how the run it continues was)."""
    provenance: dict[str, Any] = {"dataset": config.dataset, **stamp()}
    if init is not None:
        provenance["init"] = {"checkpoint": str(config.init), "step": init.step}
    if resume is not None and resume.provenance:
        provenance = {**resume.provenance, "resumed": provenance}
    return provenance


def start_run(config: TrainConfig, ctx: Context) -> Run:
    """Build the network, data and optimiser; continue from ``resume`` or start from ``init``."""
    config.out.mkdir(parents=True, exist_ok=True)
    resume, init = read_start(config)
    start = resume or init
    network = dict(start.config) if start is not None else config.network
    for seed_all in (torch.manual_seed, np.random.seed, random.seed):
        seed_all(config.seed + ctx.rank)

    side = config.input_size or (resume.input_size[0] if resume is not None else DEFAULT_INPUT_SIDE)
    codec = default_codec((side, side))
    train_set, val_set = build_datasets(config, codec)
    layout = getattr(train_set, "layout", KeypointLayout.default_for(network["joints"]))
    sampler = ResumableSampler(train_set, ctx, shuffle=config.dataset == "mpii", seed=config.seed)

    model = StackedHourglass(**network).to(ctx.device)
    if init is not None:
        model.load_state_dict(init.model)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, scheduler = make_optimizer(config, model)
    dtype = amp_dtype(config, ctx.device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16 and ctx.device.type == "cuda")
    net: nn.Module = model
    if ctx.distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    run = Run(
        config, ctx, codec, layout, train_set, val_set, sampler, model, net, optimizer, scheduler, scaler, dtype,
        make_provenance(config, resume, init),
    )  # fmt: skip
    if resume is not None:
        restore(run, resume)
    return run


def restore(run: Run, checkpoint: TrainingCheckpoint) -> None:
    """Continue exactly where ``checkpoint`` stopped (mid-epoch included); the lr schedule is the command line's."""
    if not checkpoint.resumable:
        raise CheckpointError("the checkpoint has no optimiser state to resume from; start a new run with --init")
    milestones = run.scheduler.milestones
    run.model.load_state_dict(checkpoint.model)
    run.optimizer.load_state_dict(checkpoint.optimizer)
    run.scheduler.load_state_dict(checkpoint.scheduler)
    run.scheduler.milestones = Counter(milestones)
    if checkpoint.scaler is not None:
        run.scaler.load_state_dict(checkpoint.scaler)
    run.step, run.epoch, run.batch_in_epoch = checkpoint.step, checkpoint.epoch, checkpoint.batch_in_epoch
    run.best = checkpoint.best
    if checkpoint.rng is not None:
        set_rng_state(checkpoint.rng)
