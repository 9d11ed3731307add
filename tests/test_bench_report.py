"""``bench.report`` reads only the benchmark's own result files and leaves other tools' files alone (fast)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report

MACHINE = {"cpu_model": "test CPU", "usable_cores": 2, "timestamp_utc": "2026-01-01T00:00:00+00:00", "versions": {}}
# scripts/reliability_report.py writes this beside the benchmark results, in its own shape
FOREIGN = {"generated": "2026-01-01T00:00:00+00:00", "machine": "2 CPU cores", "hostile": {"inputs": 1}}


def test_report_ignores_and_keeps_files_it_does_not_own(tmp_path: Path) -> None:
    own = {
        "benchmark": "session_options",
        "machine": MACHINE,
        "config": {},
        "results": [{"variant": "default", "min_ms": 4.0, "median_ms": 5.0, "p95_ms": 6.0, "vs_default": 1.0}],
    }
    (tmp_path / "session_options.json").write_text(json.dumps(own))
    foreign = tmp_path / "reliability.json"
    foreign.write_text(json.dumps(FOREIGN))
    before = foreign.read_bytes()

    assert set(report.load_results(tmp_path)) == {"session_options"}
    text = report.render(tmp_path)
    assert "test CPU" in text and "ONNX Runtime session options" in text
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Benchmarks\n{report.SECTION_MARKER}\n\n## Reliability\nkept\n")
    report.main(["--results", str(tmp_path), "--readme", str(readme)])
    assert foreign.read_bytes() == before
    assert "## Reliability\nkept" in readme.read_text()


def test_machine_line_names_the_cpu_generation_when_known() -> None:
    """Two CPU generations may share a model name under a hypervisor; the signature tells the tables apart."""
    line = report.machine_line({"machine": {**MACHINE, "cpu_signature": "family 26, model 2, stepping 1"}})
    assert "on test CPU (family 26, model 2, stepping 1), 2 usable cores" in line
    assert "on test CPU, 2 usable cores" in report.machine_line({"machine": MACHINE})  # results from before it


def test_readme_tables_are_the_committed_results_rendered() -> None:
    """docs/benchmarks.md's tables are ``python -m bench.report`` of ``bench/results`` verbatim: a rerun or a
    change to the report that was not written back into it fails here."""
    readme = (Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md").read_text()
    block = readme.split(report.BEGIN, 1)[1].split(report.END, 1)[0]
    assert block.strip() == report.render(report.RESULTS_DIR).strip()


def test_a_part_rerun_later_says_when_it_was_measured(tmp_path: Path) -> None:
    """``python -m bench --only PART`` long after the full run: the part's tables say they are from that later run."""
    row = {"variant": "default", "min_ms": 4.0, "median_ms": 5.0, "p95_ms": 6.0, "vs_default": 1.0}
    header = {"benchmark": "decoder", "machine": MACHINE, "config": {}, "results": []}
    for minutes, later in ((30, False), (60, True)):
        stamp = f"2026-01-01T{minutes // 60:02d}:{minutes % 60:02d}:00+00:00"
        part = {"benchmark": "session_options", "machine": {**MACHINE, "timestamp_utc": stamp}, "results": [row]}
        assert (report.later_run_note(header, part) is not None) is later, minutes
    part = {"benchmark": "session_options", "machine": {**MACHINE, "timestamp_utc": "2026-01-01T02:00:00+00:00"},
            "config": {}, "results": [row]}  # fmt: skip
    (tmp_path / "session_options.json").write_text(json.dumps(part))
    (tmp_path / "decoder.json").write_text(json.dumps(header))
    text = report.render(tmp_path)
    assert "_This part: measured 2026-01-01T02:00:00+00:00, a later run than the line above._" in text
    assert text.index("a later run") < text.index("ONNX Runtime session options")
    assert report.later_run_note(header, {"machine": {}}) is None  # results from before timestamps: no note
