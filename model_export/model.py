"""The stacked hourglass network (Newell, Yang and Deng, ECCV 2016).

Layer for layer the network of the public PyTorch port
princeton-vl/pytorch_stacked_hourglass, so its published MPII weights load
through :mod:`model_export.convert` and give the same numbers. Module names are
our own; ``convert`` maps theirs onto them.
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_MULTIPLE = 64  # stride-4 stem, then four 2x pools inside an order-4 hourglass


class Residual(nn.Module):
    """Pre-activation bottleneck: (BN, ReLU, conv) x 3 at half width, plus the input.

    The input goes through a 1x1 projection only when the widths differ.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        mid = out_ch // 2
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, mid, 1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_ch, 1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.skip is None else self.skip(x)
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + identity


class Hourglass(nn.Module):
    """Order-n hourglass: a residual at this scale plus a pooled, recursed, upsampled branch."""

    def __init__(self, order: int, features: int) -> None:
        super().__init__()
        if order < 1:
            raise ValueError(f"hourglass order must be at least 1, got {order}")
        self.up = Residual(features, features)
        self.pool = nn.MaxPool2d(2, 2)
        self.down = Residual(features, features)
        self.inner: nn.Module = Hourglass(order - 1, features) if order > 1 else Residual(features, features)
        self.out = Residual(features, features)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.out(self.inner(self.down(self.pool(x))))
        return self.up(x) + self.upsample(low)


class Stem(nn.Module):
    """7x7 stride-2 conv, BN, ReLU, residual to 128, 2x2 max-pool, two residuals."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 7, stride=2, padding=3)
        self.bn = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.res1 = Residual(64, 128)
        self.pool = nn.MaxPool2d(2, 2)
        self.res2 = Residual(128, 128)
        self.res3 = Residual(128, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.res1(self.relu(self.bn(self.conv(x)))))
        return self.res3(self.res2(x))


class Stack(nn.Module):
    """One hourglass with its heatmap head; all but the last merge back into the trunk."""

    def __init__(self, features: int, joints: int, order: int, merge: bool) -> None:
        super().__init__()
        self.hourglass = Hourglass(order, features)
        self.residual = Residual(features, features)
        self.conv = nn.Conv2d(features, features, 1)
        self.bn = nn.BatchNorm2d(features)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Conv2d(features, joints, 1)
        self.merge_features = nn.Conv2d(features, features, 1) if merge else None
        self.merge_heatmaps = nn.Conv2d(joints, features, 1) if merge else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (heatmaps, input of the next stack)."""
        feats = self.relu(self.bn(self.conv(self.residual(self.hourglass(x)))))
        heatmaps = self.head(feats)
        if self.merge_features is not None and self.merge_heatmaps is not None:
            x = x + self.merge_heatmaps(heatmaps) + self.merge_features(feats)
        return heatmaps, x


class StackedHourglass(nn.Module):
    """Stacked hourglass with intermediate supervision.

    ``forward`` takes float32 NCHW RGB in [0, 1] (H and W multiples of 64) and
    returns every stack's heatmaps, ``(N, stacks, joints, H/4, W/4)``.
    """

    def __init__(self, stacks: int = 8, features: int = 256, joints: int = 16, order: int = 4) -> None:
        super().__init__()
        for name, value in (("stacks", stacks), ("features", features), ("joints", joints), ("order", order)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if features % 2:
            raise ValueError(f"features must be even (bottlenecks halve it), got {features}")
        self.stacks, self.features, self.joints, self.order = stacks, features, joints, order
        self.stem = Stem(features)
        self.stages = nn.ModuleList(Stack(features, joints, order, merge=i < stacks - 1) for i in range(stacks))

    @property
    def input_multiple(self) -> int:
        return 4 * 2**self.order

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError unless ``x`` is (N, 3, H, W) with H, W multiples of 4 * 2**order."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an (N, 3, H, W) RGB batch, got shape {tuple(x.shape)}")
        m = self.input_multiple
        h, w = int(x.shape[2]), int(x.shape[3])
        if h % m or w % m or h == 0 or w == 0:
            raise ValueError(
                f"input height and width must be positive multiples of {m} "
                f"(stride-4 stem, then {self.order} 2x pools); got {h}x{w}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            self.check_input(x)
        x = self.stem(x)
        outputs = []
        for stack in self.stages:
            heatmaps, x = stack(x)
            outputs.append(heatmaps)
        return torch.stack(outputs, dim=1)

    @property
    def config(self) -> dict[str, int]:
        return {"stacks": self.stacks, "features": self.features, "joints": self.joints, "order": self.order}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: StackedHourglass, height: int = 256, width: int = 256) -> int:
    """Multiply-accumulates of the convolutions for one image, counted with forward hooks."""
    total = 0

    def hook(module: nn.Conv2d, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total += int(output.numel() // output.shape[0]) * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width))
        model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    return total
