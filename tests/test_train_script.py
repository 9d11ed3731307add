"""``scripts/train_default.sh`` passes each stage the recipe the model card describes.

The script's ``PYTHON`` is pointed at a recorder that writes down its arguments instead of training (a training run
needs the real datasets); what is checked is the command line each stage builds and how it resumes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train_default.sh"


def recorder(tmp_path: Path) -> tuple[Path, Path]:
    """``(python, calls)``: an executable standing in for PYTHON that appends its arguments to ``calls`` (JSON
    lines) instead of running anything."""
    calls = tmp_path / "calls.jsonl"
    python = tmp_path / "python"
    python.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"with open({str(calls)!r}, 'a') as f:\n    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    python.chmod(0o755)
    return python, calls


def run_stage(tmp_path: Path, *args: str, **env: str) -> list[list[str]]:
    """Run a stage with the recorder as PYTHON; the argument lists of its calls, in order."""
    python, calls = recorder(tmp_path)
    full_env = {**os.environ, "PYTHON": str(python), "RUNS": str(tmp_path / "runs"), **env}
    subprocess.run(["bash", str(SCRIPT), *args], env=full_env, check=True, capture_output=True, timeout=60)
    return [json.loads(line) for line in calls.read_text().splitlines()]


def value(argv: list[str], flag: str) -> str:
    """The last value given for ``flag`` (argparse: later ones win)."""
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag][-1]


def test_deepen_grows_the_third_polish_then_trains_one_cycle(tmp_path: Path) -> None:
    deepen, train = run_stage(tmp_path, "deepen")
    folder = tmp_path / "runs" / "deepen"
    assert deepen[:3] == ["-m", "model_export", "deepen"]
    assert (value(deepen, "--checkpoint"), value(deepen, "--stacks")) == ("weights/default_next.pt", "3")
    assert value(deepen, "--out") == str(folder / "init.pt")
    assert train[:3] == ["-m", "model_export", "train"]
    assert value(train, "--init") == str(folder / "init.pt") and "--resume" not in train
    recipe = {flag: value(train, flag) for flag in ("--max-steps", "--lr-milestones", "--seed", "--lr", "--input-size")}
    assert recipe == {
        "--max-steps": "2200",
        "--lr-milestones": "1600",
        "--seed": "5",
        "--lr": "1e-4",
        "--input-size": "256",
    }
    assert value(train, "--out") == str(folder)


def test_deepen_resumes_its_own_run_without_growing_again(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "deepen"
    folder.mkdir(parents=True)
    (folder / "init.pt").write_bytes(b"grown")
    (folder / "last.pt").write_bytes(b"resumable")
    [train] = run_stage(tmp_path, "deepen", "--max-minutes", "30")
    assert value(train, "--resume") == str(folder / "last.pt") and "--init" not in train
    assert value(train, "--max-minutes") == "30"


def test_polish_takes_a_committed_checkpoint_only_when_resume_names_it(tmp_path: Path) -> None:
    [fresh] = run_stage(tmp_path, "polish", "--seed", "6", FINISH="weights/default.pt")
    assert value(fresh, "--init") == "weights/default.pt" and value(fresh, "--seed") == "6"
    assert (value(fresh, "--max-steps"), value(fresh, "--lr-milestones")) == ("2400", "1800")

    committed = tmp_path / "resume.pt"
    committed.write_bytes(b"resumable")
    other = tmp_path / "other"
    other.mkdir()
    [resumed] = run_stage(other, "polish", RESUME=str(committed))
    copied = other / "runs" / "polish" / "last.pt"
    assert value(resumed, "--resume") == str(copied) and copied.read_bytes() == b"resumable"


@pytest.mark.parametrize("stage", ["", "nonsense"])
def test_unknown_stage_is_refused(tmp_path: Path, stage: str) -> None:
    result = subprocess.run(["bash", str(SCRIPT), stage], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "usage:" in result.stderr


def test_the_gpu_recipe_trains_from_the_staged_shards_and_resumes_its_own_run(tmp_path: Path) -> None:
    """scripts/device_everyday.sh (one device call): the staged shards, the CPU recipe's augmentations, MINUTES of
    training; from the shipped weights on a fresh machine, exactly resumed where an earlier call left its run."""
    script = REPO / "scripts" / "device_everyday.sh"
    python, calls = recorder(tmp_path)
    out, run = tmp_path / "out", tmp_path / "runs" / "device"
    out.mkdir()
    env = {**os.environ, "PYTHON": str(python), "OUT": str(out), "RUN": str(run)}
    subprocess.run(["bash", str(script), "8"], env=env, check=True, capture_output=True, timeout=60)
    *_, first = [json.loads(line) for line in calls.read_text().splitlines()]
    assert first[:3] == ["-m", "model_export", "train"]
    given = {flag: value(first, flag) for flag in ("--staged", "--max-minutes", "--init", "--device", "--out")}
    assert given == {"--staged": "runs/staged", "--max-minutes": "8", "--init": "weights/default.pt",
                     "--device": "cuda", "--out": str(run)}  # fmt: skip
    assert (value(first, "--truncate-prob"), value(first, "--occlusion-prob")) == ("0.3", "0.4")
    assert "coco" in value(first, "--dataset") and "--resume" not in first
    run.mkdir(parents=True)
    (run / "last.pt").write_bytes(b"a checkpoint")
    subprocess.run(["bash", str(script), "8"], env=env, check=True, capture_output=True, timeout=60)
    *_, second = [json.loads(line) for line in calls.read_text().splitlines()]
    assert value(second, "--resume") == str(run / "last.pt") and "--init" not in second
    assert sorted(p.name for p in out.iterdir()) == ["env.txt", "last.pt.part-00", "train.log"]
