"""The accuracy gate of the engines: the same evaluations through the service's pipeline on each engine that runs
here, and each one's PCK@0.2 loss against ONNX Runtime float32.

``POSE_ENGINE=auto`` may run the pose model in OpenVINO bfloat16 (the person detector stays on ONNX Runtime float32,
:mod:`service.inference.detector`) only where what it serves, the ``auto`` column, loses at most :data:`MAX_LOSS`
on every one of LSP test (person box and whole photo behind the person detector) and ``coco_subset``'s val2017
people (COCO's box; every person of the whole photos, matched). The forced engines' columns (both models on them)
are measured beside it. ``python -m model_export engine-gate`` prints the table and writes it as JSON
(``weights/engines.json``: the numbers the model card quotes).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from evaluation import evaluate
from model_export.data.sources import DEFAULT_DATA_ROOT
from service.cpus import cpu_model
from service.inference.runtime import cpu_choice, unavailable
from service.settings import DEFAULT_MODEL_PATH, REPO_ROOT

MAX_LOSS = 0.003  # PCK@0.2, the most an engine other than ONNX Runtime float32 may lose on any evaluation
REFERENCE = "onnxruntime"


def evaluations(data: Path) -> dict[str, list[str]]:
    """Name -> ``evaluate`` arguments (each scores PCK@0.2 over the limb joints in one mode)."""
    lsp = ["--dataset", "lsp-test", "--lsp", str(data / "lsp")]
    coco = [
        "--dataset", "coco", "--coco-split", "val2017",
        "--coco-annotations", str(data / "coco_subset" / "person_keypoints.json"),
        "--coco-images", str(data / "coco_subset" / "images"),
    ]  # fmt: skip
    return {
        "lsp_test_box": [*lsp, "--mode", "box"],
        "lsp_test_whole": [*lsp, "--mode", "whole"],
        "coco_val_box": [*coco, "--mode", "box"],
        "coco_val_people": [*coco, "--mode", "people"],
    }


def score(result: dict[str, Any]) -> float:
    """The PCK@0.2 of one ``evaluate --json`` result: limb joints of its one mode, or the matched people's."""
    if "modes" in result:
        [mode] = result["modes"].values()
        return float(mode["pck@0.2"]["limbs"])
    return float(result["people"]["all"]["pck@0.2_limbs_matched"])


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


GATED = "auto"  # the engine choice the gate decides about: what the service runs by default


def engines_here() -> list[str]:
    """ONNX Runtime float32 first, ``auto`` where it is something else here, then each OpenVINO precision this CPU
    runs."""
    auto = [GATED] if cpu_choice(GATED) != ("onnxruntime", "float32") else []
    return [REFERENCE, *auto, *(name for name in ("openvino-bf16", "openvino-f32") if unavailable(name) is None)]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--onnx", default=str(DEFAULT_MODEL_PATH), help="the pose model (default: the shipped one)")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT, help="where lsp/ and coco_subset/ are")
    parser.add_argument("--engines", help="comma-separated engines (default: every engine this CPU runs)")
    parser.add_argument("--only", help="comma-separated evaluations (default: all)")
    parser.add_argument("--limit", type=int, help="first N people or photos of each (a quick look, not the gate)")
    parser.add_argument("--json", metavar="OUT", help="write the table as JSON")


def run(args: argparse.Namespace) -> int:
    engines = args.engines.split(",") if args.engines else engines_here()
    if REFERENCE not in engines:
        engines.insert(0, REFERENCE)
    planned = evaluations(args.data_root)
    names = args.only.split(",") if args.only else list(planned)
    unknown = sorted(set(names) - set(planned))
    if unknown:
        print(f"error: unknown evaluations {unknown} (known: {', '.join(planned)})", file=sys.stderr)
        return 2
    table: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            table[name] = {}
            for engine in engines:
                out = Path(tmp) / f"{name}-{engine}.json"
                argv = ["--onnx", args.onnx, *planned[name], "--engine", engine, "--json", str(out)]
                if args.limit:
                    argv += ["--limit", str(args.limit)]
                parser = argparse.ArgumentParser()
                evaluate.configure(parser)
                started = time.perf_counter()
                if evaluate.run(parser.parse_args(argv)) != 0:
                    print(f"error: evaluate {' '.join(argv)} failed", file=sys.stderr)
                    return 2
                seconds[f"{name}/{engine}"] = round(time.perf_counter() - started, 1)
                table[name][engine] = score(json.loads(out.read_text()))
    losses = {
        engine: max(table[name][REFERENCE] - table[name][engine] for name in names)
        for engine in engines
        if engine != REFERENCE
    }
    print(f"\nPCK@0.2 (limb joints) by engine, {_shown(Path(args.onnx))}, on {cpu_model()}")
    print(f"{'evaluation':<18}" + "".join(f"{engine:>16}" for engine in engines))
    for name in names:
        print(f"{name:<18}" + "".join(f"{table[name][engine]:>16.4f}" for engine in engines))
    for engine, loss in losses.items():
        verdict = "within" if loss <= MAX_LOSS else "OVER"
        gated = " (the gate: what auto serves)" if engine == GATED else ""
        print(f"{engine}: largest loss {loss:+.4f} against {REFERENCE}, {verdict} {MAX_LOSS}{gated}")
    if args.json:
        record = {
            "model": _shown(Path(args.onnx)),
            "cpu": cpu_model(),
            "versions": {package: _version(package) for package in ("onnxruntime", "openvino")},
            "limit": args.limit,
            "max_loss": MAX_LOSS,
            "pck_limbs": table,
            "largest_loss": {engine: round(loss, 6) for engine, loss in losses.items()},
            "passes": {engine: loss <= MAX_LOSS for engine, loss in losses.items()},
            "gated": GATED,
            "seconds": seconds,
            "command": "python -m model_export engine-gate " + " ".join(sys.argv[2:]),
        }
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    return 0
