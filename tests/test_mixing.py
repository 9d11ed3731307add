"""The weighted mix of training sources: parsing, proportions, coverage, determinism."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from model_export.data.mixing import MixedDataset, MixEntry, parse_mix


class Numbers:
    """A source whose item ``i`` says which source and item it is (plus a key training does not use)."""

    def __init__(self, tag: int, size: int) -> None:
        self.tag, self.size, self.epochs = tag, size, []

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < self.size:
            raise IndexError(index)
        return {
            "image": np.array([self.tag, index]),
            "target": np.zeros(1),
            "weight": np.ones(1),
            "extra": np.zeros(3),
        }


def test_parse_mix() -> None:
    assert parse_mix("lsp:2, lspet:5,mpii:0.5,synthetic") == [
        MixEntry("lsp", 2.0),
        MixEntry("lspet", 5.0),
        MixEntry("mpii", 0.5),
        MixEntry("synthetic", 1.0),
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no dataset"),
        ("lsp:x", "not a number"),
        ("lsp:-1", ">= 0"),
        ("lsp:nan", "finite"),
        ("lsp:0,lspet:0", "positive"),
        ("lsp:1,lsp:2", "twice"),
        (":3", "no name"),
    ],
)
def test_parse_mix_rejects(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_mix(spec)


def test_proportions_follow_the_weights() -> None:
    mix = MixedDataset([Numbers(0, 10), Numbers(1, 1000), Numbers(2, 50)], [2, 5, 1], length=16000, seed=1)
    counts = Counter(int(mix[i]["image"][0]) for i in range(len(mix)))
    for tag, share in ((0, 2 / 8), (1, 5 / 8), (2, 1 / 8)):
        assert counts[tag] / 16000 == pytest.approx(share, abs=0.015), counts


def test_a_source_repeats_only_when_its_share_exceeds_its_size() -> None:
    mix = MixedDataset([Numbers(0, 10), Numbers(1, 1000)], [1, 1], length=400, seed=0)
    items = [tuple(mix[i]["image"]) for i in range(len(mix))]
    small = Counter(i for tag, i in items if tag == 0)
    large = Counter(i for tag, i in items if tag == 1)
    assert set(small) == set(range(10)) and max(small.values()) - min(small.values()) <= 1  # cycled evenly
    assert max(large.values()) == 1  # 200-odd draws from 1000 items: no repeats


def test_epochs_are_deterministic_and_differ() -> None:
    sources = [Numbers(0, 30), Numbers(1, 30)]
    mix = MixedDataset(sources, [1, 1], length=50, seed=7)
    first = [tuple(mix[i]["image"]) for i in range(50)]
    again = MixedDataset([Numbers(0, 30), Numbers(1, 30)], [1, 1], length=50, seed=7)
    assert first == [tuple(again[i]["image"]) for i in range(50)]
    mix.set_epoch(1)
    assert sources[0].epochs == [1] and sources[1].epochs == [1]  # the sources draw new augmentations too
    assert first != [tuple(mix[i]["image"]) for i in range(50)]


def test_a_zero_weight_source_is_never_drawn_and_items_keep_the_training_keys() -> None:
    mix = MixedDataset([Numbers(0, 5), Numbers(1, 5)], [0, 1], length=30)
    assert {int(mix[i]["image"][0]) for i in range(30)} == {1}
    assert set(mix[0]) == {"image", "target", "weight"}
    with pytest.raises(IndexError):
        mix[30]


@pytest.mark.parametrize(
    ("sources", "weights", "length"),
    [([], [], 5), ([Numbers(0, 3)], [1, 2], 5), ([Numbers(0, 3)], [1], 0), ([Numbers(0, 0)], [1], 5)],
)
def test_bad_mixes_are_rejected(sources: list, weights: list, length: int) -> None:
    with pytest.raises(ValueError):
        MixedDataset(sources, weights, length)
