"""One validation pass: loss and accuracy in crop pixels, decoded by the service's own heatmap codec."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from model_export.data.people import TORSO_SIZE
from model_export.metrics import pckh
from model_export.training.context import Context
from model_export.training.loss import autocast, heatmap_loss
from pose.codec import HeatmapCodec
from pose.layout import KeypointLayout


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
        with autocast(ctx.device, dtype):
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
