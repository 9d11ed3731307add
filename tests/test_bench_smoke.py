"""Every benchmark script runs end to end on a tiny model (``--smoke``): they cannot rot unnoticed.

No timing assertions: only that each part finishes, writes its JSON with the machine description
and the fields the README table is built from, and that the report renders them. The framework peers
(LitServe, BentoML) and BlazePose run for real: their venvs are made on the first run (``.venv/bench-peers``,
about a minute and a half) and kept. The accuracy-against-speed part runs on a tiny fake LSP made here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bench import model_speed, report
from service.inference.runtime import openvino_problem
from tests.helpers.fake_lsp import write_fake_lsp

REPO_ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run ``python -m bench --smoke`` once, every CPU part, into a fresh directory."""
    out = tmp_path_factory.mktemp("bench-results")
    lsp = tmp_path_factory.mktemp("lsp")
    write_fake_lsp(lsp, 2000, {1000: (200, 240), 1001: (260, 180), 1002: (170, 170)})  # LSP test's first three
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "HOURGLASS_BENCH_CACHE": str(out / "cache"),
        "HOURGLASS_BENCH_LSP": str(lsp),
        # the smoke model has random weights: its flat heatmaps' peaks jump under bfloat16, so the servers would not
        # agree; the engines themselves are compared on the shipped model in tests/test_runtime.py
        "POSE_ENGINE": "onnxruntime",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        check=False,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def load(results: Path, name: str) -> dict:
    doc = json.loads((results / f"{name}.json").read_text())
    assert doc["benchmark"] == name
    assert doc["machine"]["logical_cores"] >= 1
    assert "onnxruntime" in doc["machine"]["versions"]
    return doc


def test_model_speed(results: Path) -> None:
    doc = load(results, "model_speed")
    rows = doc["results"]
    engines = ["onnxruntime float32", "onnxruntime int8", "pytorch eager"]
    engines += [name for name in ("openvino bfloat16", "openvino float32") if model_speed.available(name)]
    auto = doc["config"]["auto_engine"]
    assert {(r["engine"].removesuffix(" (auto)"), r["batch"]) for r in rows} == {
        (e, b) for e in engines for b in (1, 2)
    }
    assert {r["engine"] for r in rows if r["engine"].endswith(" (auto)")} == {f"{auto} (auto)"}
    assert all(r["images_per_s"] > 0 and r["p95_ms"] >= r["median_ms"] for r in rows)


def test_overhead(results: Path) -> None:
    r = load(results, "overhead")["results"]
    assert r["post_predict"]["median_ms"] > 0 and r["bare_session_run"]["median_ms"] > 0
    assert r["post_predict_httpx"]["median_ms"] > 0 and r["httpx_overhead_ratio_p50"] > 0
    assert r["overhead_ratio_p50"] > 0
    assert set(r["service_stages_median_ms"]) >= {"decode", "preprocess", "inference", "postprocess"}
    split = r["overhead_split_median_ms"]  # from the Server-Timing header
    assert split["in_app_outside_stages"] > 0 and split["outside_app"] > 0
    ref = r["reference_architecture"]  # smoke: the tiny model stands in for the 8-stack one
    assert ref["model"]["architecture"]["stacks"] >= 1 and ref["overhead_ratio_p50"] > 0
    assert ref["post_predict"]["median_ms"] > 0 and "post_predict_httpx" not in ref


def test_load_and_batching(results: Path) -> None:
    rows = load(results, "load")["results"]
    assert {r["server"] for r in rows} == {"service", "baseline"}
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in rows)
    batching = load(results, "batching")["results"]
    assert batching and all(r["errors"] == 0 and r["requests"] > 0 for r in batching)


def test_large_upload(results: Path) -> None:
    doc = load(results, "large_upload")
    rows = doc["results"]
    images = ["photo 640x425", "smoke 1600x1200, restart markers", "smoke 2400x1800, progressive"]
    assert [r["image"] for r in rows] == images * 2  # the bench model, then the reference architecture's stand-in
    assert [r["model"]["source"] for r in rows] == ["random"] * 6
    assert rows[3]["model"]["architecture"] == doc["config"]["reference_model"]["architecture"]
    assert [r["vs_small"] for r in rows[::3]] == [1.0, 1.0]  # each model against its own small image
    assert all(r["median_ms"] > 0 and 0 < r["decode_ms"] < r["median_ms"] for r in rows)
    for small, *large in (rows[:3], rows[3:]):  # the floor: what each large file adds against its bare decode
        assert "added_ms" not in small
        for row in large:
            assert row["added_ms"] == pytest.approx(row["median_ms"] - small["median_ms"], abs=1e-3)
            assert row["bare_decode_ms"] > 0
            assert row["added_vs_bare_decode"] == pytest.approx(row["added_ms"] / row["bare_decode_ms"], abs=1e-3)
    table = report.large_upload(doc)
    assert table.count("1-stack 16-feature model (random weights)") == 6 and "added vs bare decode" in table


def test_frameworks(results: Path) -> None:
    """LitServe and BentoML serve the same model and give the same keypoints as the service."""
    doc = load(results, "frameworks")["results"]
    assert doc["agreement"]["png_max_px"] == {"service": 0.0, "litserve": 0.0, "bentoml": 0.0}
    latency = {(r["image"], r["server"]): r for r in doc["latency"]}
    for image in ("photo 640x425", "smoke 1600x1200 tiled photo"):
        assert latency[(image, "bare session.run")]["median_ms"] > 0
        for server in ("service", "litserve", "bentoml"):
            row = latency[(image, server)]
            bare = latency[(image, "bare session.run")]["median_ms"]
            assert row["overhead_ms_p50"] == pytest.approx(row["median_ms"] - bare, abs=1e-3)
    servers = {r["server"] for r in doc["load"]}
    assert servers == {"service", "litserve", "litserve-batched", "bentoml"}
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in doc["load"])


def test_people(results: Path) -> None:
    """Photos of 1, 2, 4 and 8 skiers through the person detector (a tiny random pose model: the boxes are the
    detector's), beside the single-person path and the bare calls."""
    r = load(results, "people")["results"]
    rows = {row["case"]: row for row in r["rows"]}
    single = ["single-person path", "single-person path, onnxruntime float32"]
    assert list(rows) == [*single, "1 people", "2 people", "4 people", "8 people"]
    assert all(rows[name]["people_answered"] == [1] and rows[name]["detect_ms"] == 0 for name in single)
    assert rows["1 people"]["vs_onnxruntime_single_person_path"] > 0
    # every skier is found (the detector may also answer one twice, a torso beside the whole body)
    assert all(min(rows[f"{n} people"]["people_answered"]) >= n for n in (1, 2, 4, 8))
    assert all(rows[f"{n} people"]["detect_ms"] > 0 for n in (1, 2, 4, 8))
    assert rows["1 people"]["ms_per_extra_person"] is None and rows["8 people"]["ms_per_extra_person"] is not None
    assert set(r["bare"]) == {"bare pose call", "bare detector call"}


def test_accuracy_speed(results: Path) -> None:
    """Every model scored on the same crops of the fake LSP's three test photos, timed, and plotted."""
    doc = load(results, "accuracy_speed")
    rows = {r["model"]: r for r in doc["results"]}
    blazepose = ["BlazePose lite", "BlazePose full", "BlazePose heavy"]
    ours = ["hourglass float32", "hourglass int8"]
    ours += ["hourglass bf16 (OpenVINO)"] if openvino_problem("bfloat16") is None else []  # the auto engine here
    assert list(rows) == [*ours, *blazepose]
    assert doc["config"]["photos"] == 3
    for row in rows.values():
        assert 0.0 <= row["pck_limbs"] <= 1.0 and row["ms_per_image"] > 0 and row["calls_timed"] >= 4
    assert all(rows[name]["pck_mean14"] is None for name in blazepose)  # no neck or head top
    with Image.open(results / doc["config"]["plot"]) as plot:
        assert plot.size == (900, 560)
    assert "accuracy_speed.png" in report.accuracy_speed(doc)


def test_jpeg_decode(results: Path) -> None:
    rows = load(results, "jpeg_decode")["results"]
    first = [(r["decoder"], r["threads"]) for r in rows][:3]
    assert first == [("Pillow draft + load", 1), ("service decode_rgb", 1), ("service decode_rgb", 2)]
    assert rows[0]["vs_pillow"] == 1.0
    assert {r["image"] for r in rows} == {"smoke 1600x1200, restart markers", "smoke 2400x1800, progressive"}
    assert all(r["median_ms"] > 0 and r["vs_pillow"] > 0 for r in rows)


def test_decoder_and_session_options(results: Path) -> None:
    decoders = {r["decoder"] for r in load(results, "decoder")["results"]}
    after_model = {"codec quarter, after a model call", "python loop (baseline), after a model call"}
    assert {"codec quarter", "codec dark", "python loop (baseline)", *after_model} <= decoders
    variants = load(results, "session_options")["results"]
    assert variants[0]["vs_default"] == 1.0 and len(variants) >= 2


def test_cpu_quota(results: Path) -> None:
    """Under a quota where the run may make one (root); the in-process measurement it runs in its children
    works everywhere."""
    from bench.cpu_quota import measure_in_process
    from bench.fixture import bench_model

    model = bench_model(smoke=True).onnx_path
    for pool in ("onnxruntime", "service"):
        seen = measure_in_process(model, pool, warmup=1, repeat=3, budget_s=1.0)
        assert len(seen["samples"]) == 3 and seen["pool_threads"] >= 1
    if (results / "cpu_quota.json").exists():
        rows = load(results, "cpu_quota")["results"]
        assert [r["vs_service"] for r in rows][1] == 1.0 and all(r["median_ms"] > 0 for r in rows)
        assert rows[1]["quota_cpus_seen"] == 1.0 and rows[1]["threads"] == 1


def test_gpu_script_dry_run(results: Path) -> None:
    from bench.gpu import bench_gpu

    assert bench_gpu.main(["--smoke", "--out", str(results)]) == 0
    doc = load(results, "gpu")["results"]
    engines = {r["engine"] for r in doc["rows"]}
    assert any("onnxruntime" in e for e in engines) and any("channels_last" in e for e in engines)
    assert all(r["share_of_fp16_peak"] > 0 for r in doc["rows"])


def test_report_renders_every_table(results: Path, tmp_path: Path) -> None:
    text = report.render(results)
    for heading in (
        "the service's engines vs PyTorch eager",
        "Accuracy against speed",
        "LitServe and BentoML",
        "Service overhead",
        "Throughput under load",
        "Large uploads",
        "Every person in the photo",
        "JPEG decode stage alone",
        "Heatmap decoder",
        "Dynamic batching",
        "session options",
    ):
        assert heading in text
    assert "unreadable result" not in text
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Benchmarks\n{report.SECTION_MARKER}\nProse.\n\n## Next\n")
    report.update_readme(readme, text)
    report.update_readme(readme, text)  # idempotent: replaces its own block
    content = readme.read_text()
    assert content.count(report.BEGIN) == 1 and "Service overhead" in content
    assert content.index("Prose.") < content.index(report.BEGIN) < content.index(report.END) < content.index("## Next")


def test_compare_models_times_each_model_in_turn(tmp_path: Path) -> None:
    import numpy as np

    from bench import compare_models
    from pose.layout import MPII
    from tests.helpers.models import constant_model

    peaks = np.full((MPII.num_joints, 2), 20.0)
    first, second = constant_model(tmp_path / "a.onnx", peaks), constant_model(tmp_path / "b.onnx", peaks)
    assert first.shape == second.shape
    out = tmp_path / "compare.json"
    argv = [str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx"), "--batch", "1", "2", "--warmup", "1"]
    assert compare_models.main([*argv, "--repeat", "5", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(Path(r["model"]).name, r["batch"]) for r in rows] == [
        ("a.onnx", 1), ("b.onnx", 1), ("a.onnx", 2), ("b.onnx", 2)
    ]  # fmt: skip
    assert all(r["n"] == 5 and r["min_ms"] <= r["median_ms"] <= r["p95_ms"] for r in rows)
    assert rows[0]["vs_first"] == 1.0 and rows[2]["vs_first"] == 1.0
