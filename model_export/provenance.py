"""Where a model came from: the command that made it, when, and from which code.

Training, export and conversion stamp their output with :func:`stamp`, so every checkpoint and ONNX
file says how to make it again.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def command_line(argv: Sequence[str] | None = None) -> str:
    """``python -m model_export ARGV`` as typed; without ``argv``, this process's own command line."""
    if argv is not None:
        return shlex.join(["python", "-m", "model_export", *argv])
    args = list(sys.argv)
    if args and Path(args[0]).name == "__main__.py":
        args[:1] = ["-m", Path(args[0]).parent.name]
    return shlex.join(["python", *args])


def now_utc() -> dt.datetime:
    """The current time, or ``SOURCE_DATE_EPOCH`` when set (reproducible builds pin the date)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)
    return now.replace(microsecond=0)


def stamp(command: str | None = None) -> dict[str, Any]:
    """``command`` (default: this process's), ``date`` and ``code_version``."""
    return {"command": command or command_line(), "date": now_utc().isoformat(), "code_version": code_version()}


def code_version() -> str:
    """``git describe`` of this checkout (with -dirty), or 'unknown' outside git."""
    try:
        result = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"
