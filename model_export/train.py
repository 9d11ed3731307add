"""`python -m model_export train`: train a stacked hourglass the way the paper did.

MSE on every stack's heatmaps (intermediate supervision), weighted by joint
visibility; RMSprop at 2.5e-4 (Adam optional) with step decay; optional mixed
precision (fp16/bf16 on CUDA, bf16 on CPU) and gradient clipping. Validation
(loss and PCKh@0.5 with the service's decoder) after every epoch; a CSV log,
TensorBoard, ``last.pt`` every epoch and every ``--checkpoint-every`` steps,
``best.pt`` on the best PCKh. ``--resume`` continues exactly where a
checkpoint stopped, mid-epoch included. Under ``torchrun`` it runs
DistributedDataParallel (gloo on CPU, nccl on CUDA).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import math
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Sampler
from torch.utils.data.distributed import DistributedSampler

from model_export.checkpoint import CheckpointError, TrainingCheckpoint
from model_export.data import sources
from model_export.data.augment import default_codec
from model_export.data.people import TORSO_SIZE
from model_export.metrics import pckh
from model_export.model import StackedHourglass
from model_export.provenance import stamp
from service.core.codec import HeatmapCodec
from service.core.layout import KeypointLayout

CSV_FIELDS = ("time", "epoch", "step", "phase", "loss", "lr", "images_per_s", "pckh", "pckh_0.1", "pck_0.2")


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
    with contextlib.suppress(ImportError):
        from model_export.data import mpii

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


@dataclass
class Context:
    """Process-level facts: device, distributed rank and world size."""

    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup_context(device: str) -> Context:
    """Pick the device; join the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Context(device=dev, rank=rank, world=world, local_rank=local_rank)


# ---------------------------------------------------------------- data
def build_datasets(args: argparse.Namespace, codec: HeatmapCodec) -> tuple[Any, Any]:
    """(train, validation) datasets for ``--dataset``."""
    if args.dataset == "synthetic":
        from model_export.data.synthetic import SyntheticPoseDataset

        train = SyntheticPoseDataset("train", length=args.epoch_size, base_seed=args.data_seed, codec=codec)
        val = SyntheticPoseDataset("heldout", length=args.val_size, base_seed=args.data_seed, codec=codec)
        return train, val
    if args.dataset != "mpii":
        try:
            return sources.mixed_training_set(args, codec), sources.validation_set(args, codec)
        except (ValueError, sources.DataError) as exc:
            raise SystemExit(f"error: {exc}") from exc
    try:
        from model_export.data import mpii
    except ImportError as exc:  # pragma: no cover - the MPII loader ships with the package
        raise SystemExit(f"MPII support is not available: {exc}") from exc
    try:
        return (
            mpii.dataset_from_args(args, "train", codec=codec, seed=args.seed),
            mpii.dataset_from_args(args, "val", codec=codec),
        )
    except mpii.MPIIDataError as exc:
        raise SystemExit(f"error: {exc}") from exc


class ResumableSampler(Sampler[int]):
    """This rank's share of an epoch (DistributedSampler), skipping the first ``skip`` indices."""

    def __init__(self, dataset: Any, ctx: Context, shuffle: bool, seed: int) -> None:
        self.inner = DistributedSampler(dataset, num_replicas=ctx.world, rank=ctx.rank, shuffle=shuffle, seed=seed)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.inner.set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return iter(list(self.inner)[self.skip :])

    def __len__(self) -> int:
        return len(self.inner) - self.skip


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def make_loader(
    dataset: Any, sampler: Sampler[int] | None, batch_size: int, workers: int, drop_last: bool
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=workers,
        drop_last=drop_last,
        worker_init_fn=_worker_init if workers else None,
        persistent_workers=False,  # new workers each epoch see the dataset's new epoch
        prefetch_factor=4 if workers else None,
    )


# ---------------------------------------------------------------- loss, precision
def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Visibility-weighted MSE summed over stacks, averaged over the batch.

    ``pred`` (N, S, K, h, w), ``target`` (N, K, h, w), ``weight`` (N, K).
    """
    sq = (pred.float() - target[:, None]) ** 2 * weight[:, None, :, None, None]
    return sq.mean(dim=(2, 3, 4)).sum(dim=1).mean()


def amp_dtype(args: argparse.Namespace, device: torch.device) -> torch.dtype | None:
    if not args.amp:
        return None
    if args.amp_dtype == "fp16":
        return torch.float16
    if args.amp_dtype == "bf16" or device.type != "cuda":
        return torch.bfloat16
    return torch.float16


# ---------------------------------------------------------------- checkpoints
def rng_state() -> dict[str, Any]:
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


# ---------------------------------------------------------------- validation
@dataclass
class Validation:
    """One validation pass: the loss, the scores (the first one picks ``best.pt``) and the per-joint table."""

    loss: float
    scores: dict[str, float]
    table: str

    @property
    def primary(self) -> float:
        return next(iter(self.scores.values()))


@torch.no_grad()
def validate(
    model: nn.Module,
    loader: DataLoader,
    codec: HeatmapCodec,
    ctx: Context,
    dtype: torch.dtype | None,
    channels_last: bool,
    layout: KeypointLayout,
) -> Validation:
    """Loss and accuracy in crop pixels (the service's decoder, quarter offset).

    Real photos (samples with a torso size): PCK@0.2 of the torso diameter, then PCKh@0.5 with the
    head-segment estimate; synthetic and MPII: PCKh@0.5 and @0.1.
    """
    model.eval()
    losses, preds, gts, vis, heads, torsos = [], [], [], [], [], []
    for batch in loader:
        images = batch["image"].to(ctx.device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with _autocast(ctx.device, dtype):
            out = model(images)
        out = out.float()
        target, weight = batch["target"].to(ctx.device), batch["weight"].to(ctx.device)
        losses.append(float(heatmap_loss(out, target, weight)) * len(images))
        coords, _ = codec.decode(out[:, -1].cpu().numpy(), refine="quarter")
        preds.append(coords)
        gts.append(batch["keypoints"].numpy())
        vis.append(batch["visible"].numpy())
        heads.append(batch["head_size"].numpy())
        if TORSO_SIZE in batch:
            torsos.append(batch[TORSO_SIZE].numpy())
    model.train()
    pred, gt, visible, head = (np.concatenate(x) for x in (preds, gts, vis, heads))
    loss = sum(losses) / len(pred)
    if torsos:
        torso = np.concatenate(torsos)
        scored = visible.astype(bool) & (torso > 0)[:, None]
        pck = pckh(pred, gt, scored, torso, 0.2, layout)
        known_head = visible.astype(bool) & (head > 0)[:, None]
        head_result = pckh(pred, gt, known_head, head, 0.5, layout)
        return Validation(loss, {"pck_0.2": pck.mean, "pckh": head_result.mean}, pck.table(layout, "PCK"))
    result, result01 = pckh(pred, gt, visible, head, 0.5, layout), pckh(pred, gt, visible, head, 0.1, layout)
    return Validation(loss, {"pckh": result.mean, "pckh_0.1": result01.mean}, result.table(layout))


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# ---------------------------------------------------------------- logging
class RunLog:
    """CSV rows plus TensorBoard scalars (main process only)."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        path = out / "log.csv"
        new = not path.exists()
        self.file = path.open("a", newline="")
        self.csv = csv.DictWriter(self.file, fieldnames=CSV_FIELDS)
        if new:
            self.csv.writeheader()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"))
        except ImportError:  # tensorboard is optional at run time
            self.writer = None

    def row(self, epoch: int, step: int, phase: str, **values: float) -> None:
        if not self.enabled:
            return
        record = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "epoch": epoch,
            "step": step,
            "phase": phase,
        }
        record.update({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in values.items()})
        self.csv.writerow(record)
        self.file.flush()
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, float) and math.isfinite(value):
                    self.writer.add_scalar(f"{phase}/{key}", value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            if self.writer is not None:
                self.writer.close()


def _progress(total: int, initial: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(
        total=total, initial=initial, desc=desc, dynamic_ncols=tty, mininterval=0.5 if tty else 60.0, file=sys.stderr
    )


# ---------------------------------------------------------------- main loop
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


def run(args: argparse.Namespace) -> int:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    ctx = setup_context(args.device)
    try:
        return _train(args, ctx)
    except CheckpointError as exc:  # --resume / --init: a clear line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if ctx.distributed and dist.is_initialized():
            dist.destroy_process_group()


# ---------------------------------------------------------------- one run, in named steps
@dataclass
class Run:
    """One training run: its network, optimiser and data, and where training stands."""

    args: argparse.Namespace
    ctx: Context
    out: Path
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

    def snapshot(self) -> TrainingCheckpoint:
        """What ``last.pt``/``best.pt`` hold: the weights plus everything an exact resume needs."""
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
            args={k: v for k, v in vars(self.args).items() if isinstance(v, (str, int, float, bool, type(None)))},
        )


def read_start(args: argparse.Namespace) -> tuple[TrainingCheckpoint | None, TrainingCheckpoint | None]:
    """``(resume, init)``: the checkpoint to continue exactly, or the one whose weights start a new run."""
    resume = TrainingCheckpoint.read(args.resume) if args.resume else None
    init = TrainingCheckpoint.read(args.init) if args.init and resume is None else None
    return resume, init


def make_optimizer(
    args: argparse.Namespace, model: nn.Module
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.MultiStepLR]:
    if args.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(
            model.parameters(), lr=args.lr, weight_decay=args.weight_decay
        )
    else:
        optimizer = torch.optim.RMSprop(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    milestones = [int(m) for m in args.lr_milestones.split(",") if m.strip()]
    return optimizer, torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=args.lr_gamma)


def make_provenance(
    args: argparse.Namespace, resume: TrainingCheckpoint | None, init: TrainingCheckpoint | None
) -> dict[str, Any]:
    """How this run was started (and, on resume, how the run it continues was)."""
    provenance: dict[str, Any] = {"dataset": args.dataset, **stamp()}
    if init is not None:
        provenance["init"] = {"checkpoint": str(args.init), "step": init.step}
    if resume is not None and resume.provenance:
        provenance = {**resume.provenance, "resumed": provenance}
    return provenance


def start_run(args: argparse.Namespace, ctx: Context) -> Run:
    """Build the network, data and optimiser; continue from ``--resume`` or start from ``--init``."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    resume, init = read_start(args)
    config = {"stacks": args.stacks, "features": args.features, "joints": args.joints, "order": args.order}
    if resume is not None or init is not None:
        config = dict((resume or init).config)
    torch.manual_seed(args.seed + ctx.rank)
    np.random.seed(args.seed + ctx.rank)
    random.seed(args.seed + ctx.rank)

    if args.input_size is None:
        args.input_size = resume.input_size[0] if resume is not None else 256
    codec = default_codec((args.input_size, args.input_size))
    train_set, val_set = build_datasets(args, codec)
    layout = getattr(train_set, "layout", KeypointLayout.default_for(config["joints"]))
    sampler = ResumableSampler(train_set, ctx, shuffle=args.dataset == "mpii", seed=args.seed)

    model = StackedHourglass(**config).to(ctx.device)
    if init is not None:
        model.load_state_dict(init.model)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, scheduler = make_optimizer(args, model)
    dtype = amp_dtype(args, ctx.device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16 and ctx.device.type == "cuda")
    net: nn.Module = model
    if ctx.distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    run = Run(
        args, ctx, out, codec, layout, train_set, val_set, sampler, model, net, optimizer, scheduler, scaler, dtype,
        make_provenance(args, resume, init),
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


def train_step(run: Run, batch: dict[str, torch.Tensor]) -> float:
    """One optimiser step on one batch; returns its loss."""
    device, args = run.ctx.device, run.args
    images = batch["image"].to(device, non_blocking=True)
    if args.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    target, weight = batch["target"].to(device), batch["weight"].to(device)
    with _autocast(device, run.dtype):
        pred = run.net(images)
    loss = heatmap_loss(pred, target, weight)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if args.grad_clip > 0:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), args.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    run.step += 1
    run.batch_in_epoch += 1
    return float(loss.detach())


def train_epoch(run: Run, log: RunLog, deadline: float) -> bool:
    """Train to the end of the current epoch (from where it stands); True when the run must stop."""
    args, ctx = run.args, run.ctx
    if hasattr(run.train_set, "set_epoch"):
        run.train_set.set_epoch(run.epoch)
    run.sampler.set_epoch(run.epoch, skip=run.batch_in_epoch * args.batch_size)
    loader = make_loader(run.train_set, run.sampler, args.batch_size, args.workers, drop_last=True)
    total = len(run.sampler.inner) // args.batch_size
    bar = _progress(total, run.batch_in_epoch, f"epoch {run.epoch}", ctx.main and not args.no_progress)
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
        if ctx.main and run.step % args.log_every == 0:
            lr = float(run.scheduler.get_last_lr()[0])
            log.row(run.epoch, run.step, "train", loss=window_loss / window_n, lr=lr, images_per_s=rate)
            window_loss, window_n = 0.0, 0
        if args.checkpoint_every and run.step % args.checkpoint_every == 0 and ctx.main:
            run.snapshot().save(run.out / "last.pt")
        if (args.max_steps and run.step >= args.max_steps) or out_of_time(deadline, ctx):
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
        result = validate(run.model, val_loader, run.codec, ctx, run.dtype, run.args.channels_last, run.layout)
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


def _train(args: argparse.Namespace, ctx: Context) -> int:
    run = start_run(args, ctx)
    log = RunLog(run.out, ctx.main)
    val_loader = make_loader(run.val_set, None, args.batch_size, args.workers, drop_last=False) if ctx.main else None
    if ctx.main:
        params = sum(p.numel() for p in run.model.parameters())
        print(
            f"training {run.model.config} ({params / 1e6:.2f} M parameters) on {args.dataset}, device {ctx.device}, "
            f"world {ctx.world}, batch {args.batch_size}/process, amp {run.dtype}, from step {run.step}",
            flush=True,
        )
    done = bool(args.max_steps and run.step >= args.max_steps)
    deadline = time.monotonic() + 60.0 * args.max_minutes if args.max_minutes > 0 else math.inf
    run.model.train()
    while run.epoch < args.epochs and not done:
        done = train_epoch(run, log, deadline)
        validate_and_save(run, log, val_loader)
    log.close()
    if ctx.main:
        print(
            f"done at step {run.step}, epoch {run.epoch}; best validation score {run.best:.4f}; "
            f"checkpoints in {run.out}",
            flush=True,
        )
        if args.export_onnx:
            from model_export.export import export_checkpoint

            source = run.out / "best.pt" if (run.out / "best.pt").exists() else run.out / "last.pt"
            export_checkpoint(source, args.export_onnx)
            print(f"exported {source} to {args.export_onnx}", flush=True)
    return 0
