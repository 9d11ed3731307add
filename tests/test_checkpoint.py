"""The training checkpoint's schema: what train writes is what resume, export and evaluate read."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model_export.checkpoint import CheckpointError, TrainingCheckpoint
from model_export.model import StackedHourglass
from pose.layout import MPII


def tiny() -> tuple[StackedHourglass, TrainingCheckpoint]:
    torch.manual_seed(0)
    model = StackedHourglass(stacks=1, features=16, joints=16, order=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(1, 3, 64, 64)).sum().backward()
    optimizer.step()
    checkpoint = TrainingCheckpoint(
        model=model.state_dict(),
        config=model.config,
        input_size=(64, 64),
        step=7,
        epoch=1,
        batch_in_epoch=3,
        best=0.5,
        optimizer=optimizer.state_dict(),
        scheduler={"last_epoch": 7},
        provenance={"dataset": "synthetic"},
    )
    return model, checkpoint


def test_save_and_read_round_trip(tmp_path: Path) -> None:
    model, checkpoint = tiny()
    checkpoint.save(tmp_path / "c.pt")
    back = TrainingCheckpoint.read(tmp_path / "c.pt")
    assert (back.step, back.epoch, back.batch_in_epoch, back.best, back.input_size) == (7, 1, 3, 0.5, (64, 64))
    assert back.resumable and back.keypoint_layout() == MPII
    rebuilt = back.build_model()
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(rebuilt.eval()(x), model.eval()(x))
    raw = torch.load(tmp_path / "c.pt", weights_only=True)
    assert raw["best_pckh"] == 0.5 and "best" not in raw  # the on-disk keys older checkpoints have


def test_weights_only_is_smaller_and_not_resumable(tmp_path: Path) -> None:
    _, checkpoint = tiny()
    checkpoint.save(tmp_path / "full.pt")
    checkpoint.weights_only().save(tmp_path / "slim.pt")
    slim = TrainingCheckpoint.read(tmp_path / "slim.pt")
    assert not slim.resumable and slim.optimizer is None and slim.rng is None
    assert (tmp_path / "slim.pt").stat().st_size < 0.5 * (tmp_path / "full.pt").stat().st_size
    assert slim.step == 7 and slim.provenance == {"dataset": "synthetic"}


@pytest.mark.parametrize(
    "raw",
    [{"model": {}}, {"config": {"stacks": 1}}, {"model": {"w": torch.zeros(1)}, "config": {"stacks": 1}}, [1, 2]],
)
def test_malformed_checkpoints_are_refused(raw: object, tmp_path: Path) -> None:
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError):
        TrainingCheckpoint.read(tmp_path / "bad.pt")


def test_a_mismatched_tensor_is_named(tmp_path: Path) -> None:
    _, checkpoint = tiny()
    checkpoint.config = {**checkpoint.config, "features": 32}
    with pytest.raises(CheckpointError, match="shape"):
        checkpoint.build_model()


def test_resuming_from_a_weights_only_checkpoint_is_a_clear_error(tmp_path: Path, capsys) -> None:
    from model_export.__main__ import main

    _, checkpoint = tiny()
    checkpoint.weights_only().save(tmp_path / "slim.pt")
    code = main(["train", "--resume", str(tmp_path / "slim.pt"), "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 2
    assert "no optimiser state" in capsys.readouterr().err
