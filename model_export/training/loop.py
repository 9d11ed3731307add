"""The run loop: optimiser steps, epochs with checkpoints, validation after each, the whole run."""

from __future__ import annotations

import math
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from model_export.export import export_checkpoint
from model_export.training.config import TrainConfig
from model_export.training.context import Context
from model_export.training.data import make_loader
from model_export.training.log import RunLog, progress_bar
from model_export.training.loss import autocast, heatmap_loss
from model_export.training.run import Run, start_run
from model_export.training.validation import validate


def train_step(run: Run, batch: dict[str, torch.Tensor]) -> float:
    """One optimiser step on one batch; returns its loss."""
    device, config = run.ctx.device, run.config
    images = batch["image"].to(device, non_blocking=True)
    if config.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    target, weight = batch["target"].to(device), batch["weight"].to(device)
    with autocast(device, run.dtype):
        pred = run.net(images)
    loss = heatmap_loss(pred, target, weight)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if config.grad_clip > 0:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), config.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    run.step += 1
    run.batch_in_epoch += 1
    return float(loss.detach())


def out_of_time(deadline: float, ctx: Context) -> bool:
    """Whether the wall-clock budget is spent; rank 0's clock decides for every rank."""
    if deadline == math.inf:
        return False
    expired = time.monotonic() >= deadline
    if ctx.distributed:
        flag = torch.tensor([float(expired)], device=ctx.device)
        dist.broadcast(flag, src=0)
        expired = bool(flag.item())
    return expired


def train_epoch(run: Run, log: RunLog, deadline: float) -> bool:
    """Train to the end of the current epoch (from where it stands); True when the run must stop."""
    config, ctx = run.config, run.ctx
    if hasattr(run.train_set, "set_epoch"):
        run.train_set.set_epoch(run.epoch)
    run.sampler.set_epoch(run.epoch, skip=run.batch_in_epoch * config.batch_size)
    loader = make_loader(run.train_set, run.sampler, config.batch_size, config.workers, drop_last=True)
    total = len(run.sampler.inner) // config.batch_size
    bar = progress_bar(total, run.batch_in_epoch, f"epoch {run.epoch}", ctx.main and config.progress)
    seen, window_start, window_loss, window_n = 0, time.perf_counter(), 0.0, 0
    stop = False
    for batch in loader:
        loss = train_step(run, batch)
        seen += len(batch["image"]) * ctx.world
        window_loss += loss
        window_n += 1
        elapsed = time.perf_counter() - window_start
        rate = seen / elapsed if elapsed > 0 else 0.0
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.2e}", img_s=f"{rate:.1f}", step=run.step, refresh=False)
        if ctx.main and run.step % config.log_every == 0:
            lr = float(run.scheduler.get_last_lr()[0])
            log.row(run.epoch, run.step, "train", loss=window_loss / window_n, lr=lr, images_per_s=rate)
            window_loss, window_n = 0.0, 0
        if config.checkpoint_every and run.step % config.checkpoint_every == 0 and ctx.main:
            run.snapshot().save(run.out / "last.pt")
        if (config.max_steps and run.step >= config.max_steps) or out_of_time(deadline, ctx):
            stop = True
            break
    if bar is not None:
        bar.close()
    if run.batch_in_epoch >= total:
        run.epoch, run.batch_in_epoch = run.epoch + 1, 0
    return stop


def validate_and_save(run: Run, log: RunLog, val_loader: DataLoader | None) -> None:
    """Score the validation split, write ``last.pt`` (and ``best.pt`` when the score improved)."""
    ctx = run.ctx
    if ctx.main and val_loader is not None:
        result = validate(run.model, val_loader, run.codec, ctx, run.dtype, run.config.channels_last, run.layout)
        improved = result.primary > run.best
        run.best = max(run.best, result.primary)
        log.row(run.epoch, run.step, "val", loss=result.loss, **result.scores)
        scores = " ".join(f"{name} {value:.4f}" for name, value in result.scores.items())
        summary = f"epoch {run.epoch} step {run.step}: val loss {result.loss:.6f} {scores} (best {run.best:.4f})"
        print(summary, flush=True)
        print(result.table, flush=True)
        snapshot = run.snapshot()
        snapshot.save(run.out / "last.pt")
        if improved:
            snapshot.save(run.out / "best.pt")
    if ctx.distributed:
        dist.barrier()


def train(config: TrainConfig, ctx: Context) -> Run:
    """The whole run: epochs until ``epochs``, ``max_steps`` or ``max_minutes``; optionally the ONNX export."""
    run = start_run(config, ctx)
    log = RunLog(run.out, ctx.main)
    val_loader = (
        make_loader(run.val_set, None, config.batch_size, config.workers, drop_last=False) if ctx.main else None
    )
    if ctx.main:
        params = sum(p.numel() for p in run.model.parameters())
        print(
            f"training {run.model.config} ({params / 1e6:.2f} M parameters) on {config.dataset}, device {ctx.device}, "
            f"world {ctx.world}, batch {config.batch_size}/process, amp {run.dtype}, from step {run.step}",
            flush=True,
        )
    done = bool(config.max_steps and run.step >= config.max_steps)
    deadline = time.monotonic() + 60.0 * config.max_minutes if config.max_minutes > 0 else math.inf
    run.model.train()
    while run.epoch < config.epochs and not done:
        done = train_epoch(run, log, deadline)
        validate_and_save(run, log, val_loader)
    log.close()
    if ctx.main:
        print(
            f"done at step {run.step}, epoch {run.epoch}; best validation score {run.best:.4f}; "
            f"checkpoints in {run.out}",
            flush=True,
        )
        if config.export_onnx:
            source = run.out / "best.pt" if (run.out / "best.pt").exists() else run.out / "last.pt"
            export_checkpoint(source, config.export_onnx)
            print(f"exported {source} to {config.export_onnx}", flush=True)
    return run
