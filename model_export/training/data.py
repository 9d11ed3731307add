"""The run's datasets, the sampler that resumes mid-epoch, and the loaders."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler
from torch.utils.data.distributed import DistributedSampler

from model_export.data import mpii, sources
from model_export.data.synthetic import SyntheticPoseDataset
from model_export.training.config import TrainConfig
from model_export.training.context import Context
from pose.codec import HeatmapCodec


class DatasetError(ValueError):
    """A ``--dataset`` or data path that cannot be loaded; the command line prints it and exits with status 2."""


def build_datasets(config: TrainConfig, codec: HeatmapCodec) -> tuple[Any, Any]:
    """(train, validation) datasets for ``config.dataset``: synthetic, full MPII, or a weighted mix of sources."""
    if config.dataset == "synthetic":
        train = SyntheticPoseDataset("train", length=config.epoch_size, base_seed=config.data_seed, codec=codec)
        val = SyntheticPoseDataset("heldout", length=config.val_size, base_seed=config.data_seed, codec=codec)
        return train, val
    try:
        if config.dataset == "mpii":
            return (
                mpii.dataset_from_args(config, "train", codec=codec, seed=config.seed),
                mpii.dataset_from_args(config, "val", codec=codec),
            )
        return sources.mixed_training_set(config, codec), sources.validation_set(config, codec)
    except (ValueError, sources.DataError, mpii.MPIIDataError) as exc:
        raise DatasetError(str(exc)) from exc


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
