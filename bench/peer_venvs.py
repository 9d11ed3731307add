"""Venvs of the benchmark's peers and BlazePose's model files, made on first use and cached.

Each peer gets a venv of its own under :data:`PEER_ROOT` (``.venv/bench-peers``, or
``$HOURGLASS_PEER_VENVS``; kept across runs, like ``.venv/compose``), installed from
its lock file ``requirements/bench-NAME.txt`` (``scripts/lock.sh bench-NAME`` regenerates it), so nothing
a peer needs touches the service's dependencies. A venv is rebuilt when its lock file changes. BlazePose's
``.tflite`` files come from the npm package ``@mediapipe/pose`` at a pinned version, checked against the
registry's SHA-1 of the tarball.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from bench.common import REPO_ROOT

PEER_ROOT = Path(os.environ.get("HOURGLASS_PEER_VENVS", REPO_ROOT / ".venv" / "bench-peers"))
PEER_SETS: tuple[str, ...] = ("litserve", "bentoml", "litert")
PIP_TIMEOUT_S = 1200
MEDIAPIPE_POSE = "@mediapipe/pose@0.5.1675469404"
MEDIAPIPE_POSE_SHA1 = "8f81e64c6561b2357a021a134b54de0204bafc72"
BLAZEPOSE_VARIANTS: tuple[str, ...] = ("lite", "full", "heavy")


class PeerSetupError(RuntimeError):
    """A peer's venv or model files could not be made (no network, a failed install, a bad download)."""


def lock_file(name: str) -> Path:
    return REPO_ROOT / "requirements" / f"bench-{name}.txt"


def peer_python(name: str) -> Path:
    """The interpreter of peer ``name``'s venv, made (or remade after a lock change) first if needed."""
    if name not in PEER_SETS:
        raise ValueError(f"unknown peer set {name!r}; one of {PEER_SETS}")
    lock = lock_file(name)
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    venv = PEER_ROOT / name
    python, stamp = venv / "bin" / "python", venv / ".lock-sha256"
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    print(f"making the {name} peer's venv in {venv} from {lock.relative_to(REPO_ROOT)} (once)", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "install", "-q"]
    _run([*pip, "--no-deps", "-r", str(lock)])
    stamp.write_text(digest)
    return python


def peer_executable(name: str, program: str) -> Path:
    """A console script (such as ``bentoml``) of peer ``name``'s venv."""
    return peer_python(name).parent / program


def blazepose_models() -> dict[str, Path]:
    """``{"lite": path, "full": path, "heavy": path}``: BlazePose GHUM's landmark models, fetched once with npm."""
    folder = PEER_ROOT / "blazepose"
    paths = {v: folder / f"pose_landmark_{v}.tflite" for v in BLAZEPOSE_VARIANTS}
    if all(p.exists() for p in paths.values()):
        return paths
    if shutil.which("npm") is None:
        raise PeerSetupError("npm is needed once to fetch BlazePose's models (the @mediapipe/pose package)")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"fetching {MEDIAPIPE_POSE} into {folder} (once)", flush=True)
    packed = _run(["npm", "pack", "--silent", MEDIAPIPE_POSE], cwd=folder).strip().splitlines()[-1]
    tarball = folder / packed
    sha1 = hashlib.sha1(tarball.read_bytes()).hexdigest()
    if sha1 != MEDIAPIPE_POSE_SHA1:
        tarball.unlink()
        raise PeerSetupError(f"{MEDIAPIPE_POSE}: SHA-1 {sha1}, expected {MEDIAPIPE_POSE_SHA1}")
    with tarfile.open(tarball) as archive:
        for path in paths.values():
            member = archive.extractfile(f"package/{path.name}")
            if member is None:
                raise PeerSetupError(f"{MEDIAPIPE_POSE} has no {path.name}")
            partial = path.with_suffix(".partial")
            partial.write_bytes(member.read())
            partial.replace(path)
    tarball.unlink()
    return paths


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerSetupError(f"{' '.join(argv)}: {exc}") from exc
    if done.returncode != 0:
        raise PeerSetupError(f"{' '.join(argv)} exited with {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.peer_venvs``: make every peer venv and fetch BlazePose now."""
    for name in PEER_SETS:
        print(name, peer_python(name))
    for variant, path in blazepose_models().items():
        print(f"blazepose {variant}", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
