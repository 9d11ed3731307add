"""The typed configuration of one training run: what the command line's flags mean, checked once."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from model_export.data.sources import DEFAULT_DATA_ROOT


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a run. Field names are the command line's flags (``--epoch-size`` -> ``epoch_size``), so
    the data sources read their paths from it as they would from the parsed flags."""

    # data
    dataset: str = "synthetic"
    epoch_size: int = 8000
    val_size: int = 400
    data_seed: int = 0
    workers: int = 1
    data_root: Path = DEFAULT_DATA_ROOT
    lsp: Path | None = None
    lspet: Path | None = None
    whole_image_prob: float = 0.25
    coco: Path | None = None
    pseudo: Path | None = None  # a folder of `python -m model_export pseudo-label`
    mirrored: tuple[Path, ...] = ()  # label-audit lists: people whose left and right labels are swapped back
    staged: Path | None = None  # shards of `python -m model_export stage`, read instead of the datasets
    truncate_prob: float = 0.0
    occlusion_prob: float = 0.0
    distractor_prob: float = 0.0
    mpii_images: str | None = None
    mpii_train: str | None = None
    mpii_val: str | None = None
    mpii_headboxes: str | None = None
    # model
    stacks: int = 2
    features: int = 64
    joints: int = 16
    order: int = 4
    input_size: int | None = None  # square side; None: the resumed checkpoint's, else 256
    init: str | None = None
    # optimisation
    batch_size: int = 16
    epochs: int = 10
    max_steps: int = 0
    max_minutes: float = 0.0
    optimizer: Literal["rmsprop", "adam"] = "rmsprop"
    lr: float = 2.5e-4
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    amp: bool = False
    amp_dtype: Literal["auto", "fp16", "bf16"] = "auto"
    channels_last: bool = False
    seed: int = 0
    # run
    out: Path = Path("runs/train")
    resume: str | None = None
    checkpoint_every: int = 500
    log_every: int = 50
    device: str = "auto"
    threads: int = 0
    export_onnx: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        positive = {"epoch_size": self.epoch_size, "batch_size": self.batch_size, "log_every": self.log_every}
        bad = [f"--{name.replace('_', '-')} {value}" for name, value in positive.items() if value < 1]
        shares = {"whole_image_prob": self.whole_image_prob, "truncate_prob": self.truncate_prob}
        shares["occlusion_prob"] = self.occlusion_prob
        shares["distractor_prob"] = self.distractor_prob
        bad += [
            f"--{name.replace('_', '-')} {value} (a share in [0, 1])"
            for name, value in shares.items()
            if not 0.0 <= value <= 1.0
        ]
        if self.input_size is not None and (self.input_size < 64 or self.input_size % 64):
            bad.append(f"--input-size {self.input_size} (a multiple of 64)")
        if bad:
            raise ValueError(f"invalid training settings: {', '.join(bad)}")

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> TrainConfig:
        """The configuration the parsed flags of :func:`model_export.train.configure` describe."""
        given = vars(args)
        values: dict[str, Any] = {f.name: given[f.name] for f in fields(cls) if f.name in given}
        values["lr_milestones"] = parse_milestones(given.get("lr_milestones") or "")
        values["progress"] = not given.get("no_progress", False)
        for name in ("data_root", "lsp", "lspet", "coco", "pseudo", "staged", "out"):
            if values.get(name) is not None:
                values[name] = Path(values[name])
        values["mirrored"] = tuple(Path(p) for p in given.get("mirrored") or ())
        return cls(**values)

    @property
    def network(self) -> dict[str, int]:
        """``StackedHourglass(**network)`` for a run that starts from scratch."""
        return {"stacks": self.stacks, "features": self.features, "joints": self.joints, "order": self.order}

    def record(self) -> dict[str, Any]:
        """The settings as plain values, for the checkpoint's ``args`` (paths as text, milestones comma-separated)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = ",".join(map(str, value))
            out[f.name] = value
        return out


def parse_milestones(text: str) -> tuple[int, ...]:
    """``"1000,2000"`` -> ``(1000, 2000)`` (ValueError naming a part that is not a step number)."""
    steps = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if not part.isdigit():
            raise ValueError(f"--lr-milestones: {part!r} is not a step number")
        steps.append(int(part))
    return tuple(steps)
