"""The training objective and its numerics: the heatmap loss and mixed precision."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from model_export.training.config import TrainConfig


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Visibility-weighted MSE summed over stacks (intermediate supervision), averaged over the batch.

    ``pred`` (N, S, K, h, w), ``target`` (N, K, h, w), ``weight`` (N, K).
    """
    sq = (pred.float() - target[:, None]) ** 2 * weight[:, None, :, None, None]
    return sq.mean(dim=(2, 3, 4)).sum(dim=1).mean()


def amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``--amp``: bf16 on CPU, fp16 on CUDA unless ``--amp-dtype`` says otherwise."""
    if not config.amp:
        return None
    if config.amp_dtype == "fp16":
        return torch.float16
    if config.amp_dtype == "bf16" or device.type != "cuda":
        return torch.bfloat16
    return torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """Autocast to ``dtype`` on ``device``, or nothing when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
