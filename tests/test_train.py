"""The training loop: a tiny configuration learns, resumes exactly, and runs under torchrun (gloo)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model_export.__main__ import main
from model_export.checkpoint import TrainingCheckpoint
from pose.layout import MPII

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--stacks", "1", "--features", "16", "--input-size", "128", "--batch-size", "4", "--val-size", "8"]
TINY += ["--workers", "0", "--threads", "1"]


def _train(out: Path, *extra: str) -> None:
    argv = ["train", *TINY, "--out", str(out), "--no-progress", "--log-every", "1", *extra]
    assert main(argv) == 0


def _rows(out: Path, phase: str) -> list[dict[str, str]]:
    with (out / "log.csv").open() as f:
        return [r for r in csv.DictReader(f) if r["phase"] == phase]


def test_tiny_model_learns_and_checkpoints(tmp_path: Path) -> None:
    out = tmp_path / "run"
    schedule = ["--epoch-size", "80", "--epochs", "1", "--lr", "1e-3", "--optimizer", "adam"]
    _train(out, *schedule, "--checkpoint-every", "10")
    losses = [float(r["loss"]) for r in _rows(out, "train")]
    assert len(losses) == 20
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    val = _rows(out, "val")
    assert len(val) == 1 and 0.0 <= float(val[0]["pckh"]) <= 1.0
    ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=True)  # loadable the safe way
    assert ckpt["step"] == 20 and ckpt["epoch"] == 1 and ckpt["batch_in_epoch"] == 0
    assert ckpt["config"] == {"stacks": 1, "features": 16, "joints": 16, "order": 4}
    assert ckpt["input_size"] == [128, 128]
    assert set(ckpt["provenance"]) >= {"dataset", "command", "date", "code_version"}
    assert ckpt["provenance"]["dataset"] == "synthetic"
    assert ckpt["args"]["epoch_size"] == 80 and ckpt["args"]["optimizer"] == "adam"  # the typed config, recorded
    layout = TrainingCheckpoint.read(out / "last.pt").keypoint_layout()  # the joints are written, not implied
    assert ckpt["layout"]["names"] == list(MPII.names)
    assert layout == MPII
    assert (out / "best.pt").exists()
    assert any((out / "tensorboard").iterdir())


def test_resume_continues_exactly_where_it_stopped(tmp_path: Path) -> None:
    common = ["--epoch-size", "16", "--epochs", "3", "--lr-milestones", "5", "--checkpoint-every", "1"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    _train(straight, *common, "--max-steps", "7")
    _train(split, *common, "--max-steps", "3")  # stops mid-epoch (4 batches per epoch)
    first = torch.load(split / "last.pt", map_location="cpu", weights_only=True)
    assert first["step"] == 3 and first["epoch"] == 0 and first["batch_in_epoch"] == 3
    _train(split, *common, "--max-steps", "7", "--resume", str(split / "last.pt"))
    a = torch.load(straight / "last.pt", map_location="cpu", weights_only=True)
    b = torch.load(split / "last.pt", map_location="cpu", weights_only=True)
    assert b["step"] == 7 and b["epoch"] == a["epoch"] and b["batch_in_epoch"] == a["batch_in_epoch"]
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 7
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    losses_a = [r["loss"] for r in _rows(straight, "train")]
    losses_b = [r["loss"] for r in _rows(split, "train")]
    assert [r["step"] for r in _rows(split, "train")] == [str(i) for i in range(1, 8)]
    assert losses_a == losses_b


def test_time_budget_stops_cleanly_and_resumably(tmp_path: Path) -> None:
    out = tmp_path / "timed"
    _train(out, "--epoch-size", "16", "--epochs", "3", "--max-minutes", "1e-6")  # spent after the first step
    ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["step"] == 1 and ckpt["epoch"] == 0 and ckpt["batch_in_epoch"] == 1
    assert len(_rows(out, "val")) == 1


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "model_export", "train", *TINY, "--threads", "1", "--out", str(out), "--no-progress",
        "--epoch-size", "16", "--epochs", "1", "--max-steps", "2", "--device", "cpu",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "world 2" in done.stdout
    ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["step"] == 2
    assert not any(k.startswith("module.") for k in ckpt["model"])  # saved without the DDP wrapper


@pytest.fixture(scope="module")
def real_sources(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Flags naming a tiny LSP (1,000 photos: the fit and validation splits) and a tiny LSPET."""
    from tests.helpers.fake_lsp import write_fake_lsp

    root = tmp_path_factory.mktemp("real")
    write_fake_lsp(root / "lsp", 1000, dict.fromkeys(range(1000), (160, 170)))
    write_fake_lsp(root / "lspet", 12, dict.fromkeys(range(12), (170, 160)), layout="lspet", seed=1)
    return ["--lsp", str(root / "lsp"), "--lspet", str(root / "lspet")]


def test_a_mix_of_real_sources_trains_validates_with_pck_and_resumes_exactly(
    tmp_path: Path, real_sources: list[str]
) -> None:
    mix = ["--dataset", "lsp:1,lspet:2,synthetic:0.5", *real_sources, "--epoch-size", "16", "--epochs", "3"]
    common = [*mix, "--checkpoint-every", "1", "--optimizer", "adam", "--lr", "1e-3"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    _train(straight, *common, "--max-steps", "6")
    _train(split, *common, "--max-steps", "2")
    _train(split, *common, "--max-steps", "6", "--resume", str(split / "last.pt"))
    a = torch.load(straight / "last.pt", map_location="cpu", weights_only=True)
    b = torch.load(split / "last.pt", map_location="cpu", weights_only=True)
    assert a["step"] == b["step"] == 6 and a["provenance"]["dataset"] == "lsp:1,lspet:2,synthetic:0.5"
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert [r["loss"] for r in _rows(straight, "train")] == [r["loss"] for r in _rows(split, "train")]
    val = _rows(straight, "val")
    assert val and all(0.0 <= float(r["pck_0.2"]) <= 1.0 and r["pckh_0.1"] == "" for r in val)
    assert set(a) >= {"model", "optimizer", "scheduler", "rng", "step", "epoch", "batch_in_epoch", "config"}


def test_init_starts_from_weights_and_input_size_can_change(tmp_path: Path, real_sources: list[str]) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _train(first, "--epoch-size", "8", "--epochs", "1", "--max-steps", "1")
    start = torch.load(first / "last.pt", map_location="cpu", weights_only=True)
    mix = ["--dataset", "lsp:1,lspet:1", *real_sources, "--epoch-size", "8", "--epochs", "1", "--max-steps", "1"]
    _train(second, *mix, "--init", str(first / "last.pt"), "--input-size", "192", "--lr", "0")
    after = torch.load(second / "last.pt", map_location="cpu", weights_only=True)
    assert after["step"] == 1 and after["input_size"] == [192, 192]  # a fresh run: its own step count and size
    assert after["provenance"]["init"] == {"checkpoint": str(first / "last.pt"), "step": 1}
    for key, value in start["model"].items():
        if value.is_floating_point() and "running" not in key:  # lr 0: the weights are the initial ones
            torch.testing.assert_close(after["model"][key], value, msg=key)


def test_an_unknown_source_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", *TINY, "--out", str(tmp_path / "bad"), "--no-progress", "--dataset", "lsp:1,flickr:1"]
    assert main(argv) == 2
    assert "error: unknown dataset flickr" in capsys.readouterr().err


def test_a_bad_setting_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", *TINY, "--out", str(tmp_path / "bad"), "--no-progress", "--lr-milestones", "100,soon"]
    assert main(argv) == 2
    assert "'soon' is not a step number" in capsys.readouterr().err
