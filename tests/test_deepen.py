"""Deepening a trained model: the new network predicts exactly what the old one did, and can learn from there."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model_export.__main__ import main
from model_export.checkpoint import TrainingCheckpoint
from model_export.deepen import deepen, deepen_state
from model_export.model import StackedHourglass


def trained(stacks: int) -> StackedHourglass:
    """A small network with random weights and non-trivial batch-norm statistics."""
    torch.manual_seed(stacks)
    model = StackedHourglass(stacks=stacks, features=16, joints=16, order=2)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize(("old", "new"), [(1, 2), (2, 3), (2, 4)])
def test_deepened_network_predicts_exactly_the_same_heatmaps(old: int, new: int) -> None:
    model = trained(old)
    state, config = deepen_state(model.state_dict(), model.config, new)
    deeper = StackedHourglass(**config)
    deeper.load_state_dict(state)  # strict: every tensor of the deeper network is set
    deeper.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        before, after = model(x), deeper(x)
    assert config["stacks"] == new and after.shape[1] == new
    assert torch.equal(after[:, -1], before[:, -1])
    assert torch.equal(after[:, :old], before)  # the old stacks' intermediate heatmaps are untouched too


def test_zeroed_merges_still_learn() -> None:
    model = trained(2)
    state, config = deepen_state(model.state_dict(), model.config, 3)
    deeper = StackedHourglass(**config)
    deeper.load_state_dict(state)
    merge = deeper.stages[1].merge_features
    assert merge is not None and not merge.weight.any()
    deeper.train()
    deeper(torch.rand(2, 3, 64, 64))[:, -1].square().mean().backward()
    assert merge.weight.grad is not None and merge.weight.grad.abs().sum() > 0


def test_deepen_refuses_fewer_or_equal_stacks() -> None:
    model = trained(2)
    for stacks in (1, 2):
        with pytest.raises(ValueError, match="more than the checkpoint's 2"):
            deepen_state(model.state_dict(), model.config, stacks)


def cli(source: Path, stacks: int, out: Path) -> int:
    return main(["deepen", "--checkpoint", str(source), "--stacks", str(stacks), "--out", str(out)])


def test_cli_writes_an_init_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = trained(2)
    source = TrainingCheckpoint(model=model.state_dict(), config=model.config, input_size=(64, 64), step=900, best=0.7)
    source.save(tmp_path / "two.pt")
    assert cli(tmp_path / "two.pt", 3, tmp_path / "three.pt") == 0
    grown = TrainingCheckpoint.read(tmp_path / "three.pt")
    assert grown.config["stacks"] == 3 and grown.input_size == (64, 64)
    assert (grown.step, grown.best, grown.resumable) == (0, -1.0, False)
    assert grown.model.keys() == deepen(source, 3).model.keys()

    assert cli(tmp_path / "two.pt", 2, tmp_path / "x.pt") == 2
    assert "more than the checkpoint's 2" in capsys.readouterr().err
    assert cli(tmp_path / "none.pt", 3, tmp_path / "x.pt") == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
