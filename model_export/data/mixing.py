"""Several training sources in one epoch, each with a sampling weight: ``lsp:2,lspet:5,mpii:2,synthetic:0.5``.

A weight is the source's share of every epoch (weights are normalised), not a per-image factor, so a small,
clean set can be seen more often than a large, noisy one. Each epoch of ``length`` samples assigns its slots to
sources by a seeded draw and walks each source through a fresh permutation of its items (cycled when the
source is smaller than its share), so within an epoch a source's items repeat only when they must. Items
keep only the keys training needs, so sources with different extra keys batch together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

TRAINING_KEYS: tuple[str, ...] = ("image", "target", "weight")


class Source(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class MixEntry:
    name: str
    weight: float


def parse_mix(spec: str) -> list[MixEntry]:
    """``"lsp:2,lspet:5,synthetic"`` -> entries (a missing weight is 1); ValueError names the bad part."""
    entries: list[MixEntry] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, weight_text = part.partition(":")
        name = name.strip()
        try:
            weight = float(weight_text) if weight_text.strip() else 1.0
        except ValueError:
            raise ValueError(f"dataset weight of {name!r} is not a number: {weight_text!r}") from None
        if not name:
            raise ValueError(f"dataset entry {part!r} has no name")
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"dataset weight of {name!r} must be finite and >= 0, got {weight_text!r}")
        if any(e.name == name for e in entries):
            raise ValueError(f"dataset {name!r} is named twice")
        entries.append(MixEntry(name, weight))
    if not entries:
        raise ValueError("no dataset named")
    if sum(e.weight for e in entries) <= 0:
        raise ValueError("at least one dataset weight must be positive")
    return entries


class MixedDataset:
    """``length`` samples per epoch drawn from ``sources`` in proportion to ``weights``."""

    def __init__(
        self, sources: Sequence[Source], weights: Sequence[float], length: int, seed: int = 0, names: Sequence[str] = ()
    ) -> None:
        if len(sources) != len(weights) or not sources:
            raise ValueError("one weight per source, at least one source")
        if length < 1:
            raise ValueError(f"epoch length must be positive, got {length}")
        w = np.asarray(weights, np.float64)
        if np.any(w < 0) or w.sum() <= 0 or not np.all(np.isfinite(w)):
            raise ValueError(f"weights must be finite, >= 0 and not all 0, got {list(weights)}")
        if any(len(s) == 0 and wi > 0 for s, wi in zip(sources, w, strict=True)):
            raise ValueError("a source with a positive weight is empty")
        self.sources = list(sources)
        self.probabilities = w / w.sum()
        self.length = int(length)
        self.seed = int(seed)
        self.names = list(names) or [f"source{i}" for i in range(len(sources))]
        self.epoch = 0
        self._plan: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._plan = None
        for source in self.sources:
            if hasattr(source, "set_epoch"):
                source.set_epoch(epoch)

    def plan(self) -> tuple[np.ndarray, np.ndarray]:
        """This epoch's ``(source, item)`` per slot, deterministic in (seed, epoch)."""
        if self._plan is None:
            rng = np.random.default_rng((self.seed, self.epoch, 0x4D1C))
            which = rng.choice(len(self.sources), size=self.length, p=self.probabilities)
            items = np.zeros(self.length, np.int64)
            for s, source in enumerate(self.sources):
                slots = np.flatnonzero(which == s)
                if len(slots) == 0:
                    continue
                n = len(source)
                order = np.concatenate([rng.permutation(n) for _ in range(-(-len(slots) // n))])
                items[slots] = order[: len(slots)]
            self._plan = (which, items)
        return self._plan

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        which, items = self.plan()
        sample = self.sources[int(which[index])][int(items[index])]
        return {key: sample[key] for key in TRAINING_KEYS}
