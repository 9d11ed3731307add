"""What a run reports: CSV rows and TensorBoard scalars (main process only), and the progress bar."""

from __future__ import annotations

import csv
import datetime as dt
import math
import sys
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

CSV_FIELDS = ("time", "epoch", "step", "phase", "loss", "lr", "images_per_s", "pckh", "pckh_0.1", "pck_0.2")


class RunLog:
    """``OUT/log.csv`` rows plus TensorBoard scalars under ``OUT/tensorboard`` (main process only)."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.enabled = enabled
        if not enabled:
            return
        path = out / "log.csv"
        new = not path.exists()
        self.file = path.open("a", newline="")
        self.csv = csv.DictWriter(self.file, fieldnames=CSV_FIELDS)
        if new:
            self.csv.writeheader()
        self.writer = SummaryWriter(str(out / "tensorboard"))

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
        for key, value in values.items():
            if isinstance(value, float) and math.isfinite(value):
                self.writer.add_scalar(f"{phase}/{key}", value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            self.writer.close()


def progress_bar(total: int, initial: int, desc: str, enabled: bool) -> tqdm | None:
    """A tqdm bar on stderr (refreshed every minute when stderr is not a terminal), or None."""
    if not enabled:
        return None
    tty = sys.stderr.isatty()
    return tqdm(
        total=total, initial=initial, desc=desc, dynamic_ncols=tty, mininterval=0.5 if tty else 60.0, file=sys.stderr
    )
