"""The README's example answer and example ``bbox`` are what the shipped models answer for its photo today
(``scripts/readme_example.py`` computes them; ``--readme`` writes them back after a model change)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"-?\d+\.\d+|-?\d+")
TOLERANCE = 0.02  # a hundredth of a pixel or of a score either way: other CPUs round float32 sums differently


def load_script():
    spec = importlib.util.spec_from_file_location("readme_example", ROOT / "scripts" / "readme_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def same_up_to_rounding(expected: str, actual: str) -> bool:
    """Equal text, except numbers may differ by :data:`TOLERANCE`."""
    if NUMBER.sub("#", expected) != NUMBER.sub("#", actual):
        return False
    pairs = zip(NUMBER.findall(expected), NUMBER.findall(actual), strict=True)
    return all(abs(float(a) - float(b)) <= TOLERANCE + 1e-9 or a == b for a, b in pairs)


@pytest.mark.slow
def test_the_readme_example_is_what_the_shipped_model_answers() -> None:
    script = load_script()
    fresh = script.blocks(script.predict())
    documented = script.readme_blocks((ROOT / "README.md").read_text())
    for name in script.MARKERS:
        assert same_up_to_rounding(documented[name], fresh[name]), (
            f"README's {name} is stale; run `.venv/bin/python scripts/readme_example.py --readme`\n"
            f"README:\n{documented[name]}\nnow:\n{fresh[name]}"
        )


def test_the_comparison_tolerates_rounding_and_nothing_more() -> None:
    assert same_up_to_rounding('{"x": 396.64, "score": 0.5484}', '{"x": 396.65, "score": 0.5483}')
    assert not same_up_to_rounding('{"x": 396.64}', '{"x": 398.63}')
    assert not same_up_to_rounding('{"x": 396.64}', '{"y": 396.64}')
    assert not same_up_to_rounding('"version": "3fb29bcc72fc"', '"version": "e64be970eac7"')


def test_the_readme_python_client_runs_against_a_real_server(constant_server) -> None:
    """The README's httpx snippet, as written, against a running service (its URL swapped in)."""
    import subprocess
    import sys

    readme = (ROOT / "README.md").read_text()
    snippet = re.search(r"```python\n(import httpx.*?)```", readme, re.DOTALL)
    assert snippet is not None, "README.md has no httpx client snippet"
    code = snippet[1].replace("http://localhost:8000", constant_server.url)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("{'x': ") for line in lines), result.stdout  # a box per person found
