"""Benchmark: accuracy against speed on LSP test, for our models and BlazePose, as a picture.

Users choose a pose model by its accuracy at a latency. Every model here gets the same person crops: LSP
test's photos (im1001-im2000) cropped to their joints' box and letterboxed to 256x256 by the service's own
pipeline (:func:`evaluation.quantize.service_inputs`), the inputs ``POST /predict`` builds for a
``bbox``. Each model's points are mapped back through the same exact inverse and scored with PCK@0.2 of
the torso (:mod:`evaluation.photo_eval`).

Models: the served float32 model, its int8 twin (:mod:`evaluation.quantize`: made once from the float
file, calibrated on LSP's training split, cached), and BlazePose GHUM lite, full and heavy (the landmark
models of the npm package ``@mediapipe/pose``, under LiteRT in a venv of their own, :mod:`bench.peer_venvs`).
BlazePose has no neck or head-top landmark, so the figure compared is the mean over LSP's 12 limb joints;
ours also get the 14-joint mean. Speed is one model call at batch 1 (ONNX Runtime with the service's
session options; LiteRT with XNNPACK on as many threads), timed in blocks that take turns across the models.

Needs LSP (``--lsp``, default ``$HOURGLASS_BENCH_LSP`` or ``../shared/data/lsp``): without it the part
says so and is skipped. Writes ``accuracy_speed.json`` and ``accuracy_speed.png`` (the plot in the README).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bench.common import REPO_ROOT, Stats, add_common_args, print_rows, profile_of, write_result
from bench.fixture import bench_model, default_lsp, has_lsp, int8_twin
from bench.peer_venvs import BLAZEPOSE_VARIANTS, blazepose_models, peer_python
from evaluation.photo_eval import score_mode
from evaluation.quantize import service_inputs
from model_export.data.people import PersonRecord, lsp_records
from pose.codec import HeatmapCodec
from pose.geometry import Affine, plan
from pose.layout import MPII_JOINTS
from service.cpus import usable_cores
from service.inference.engine import Engine
from service.inference.pipeline import Upload
from service.inference.runtime import cpu_session, openvino_problem

LSP_TEST = range(1000, 2000)
# BlazePose GHUM's landmark numbers of LSP's 12 limb joints (its model card's topology)
BLAZEPOSE_JOINTS: dict[str, int] = {
    "right_ankle": 28,
    "right_knee": 26,
    "right_hip": 24,
    "left_hip": 23,
    "left_knee": 25,
    "left_ankle": 27,
    "right_wrist": 16,
    "right_elbow": 14,
    "right_shoulder": 12,
    "left_shoulder": 11,
    "left_elbow": 13,
    "left_wrist": 15,
}
PLOT_NAME = "accuracy_speed.png"


class PersonCrops:
    """The service's model inputs for each record's person box, and each input's map back to the photo."""

    def __init__(self, engine: Engine, records: Sequence[PersonRecord]) -> None:
        uploads = [Upload(r.image.read_bytes(), "image/jpeg", r.image.name) for r in records]
        self.inputs = service_inputs(engine, uploads, [r.box() for r in records])  # (N, 3, H, W) float32
        size = engine.info.metadata.input_size
        self.affines: list[Affine] = []
        for record in records:
            with Image.open(record.image) as photo:
                self.affines.append(plan(photo.size, size, "letterbox", record.box()))

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Input-pixel points ``(N, K, 2)`` -> photo pixels."""
        return np.stack([affine.to_image(p) for affine, p in zip(self.affines, points, strict=True)])

    def uint8_nhwc(self) -> np.ndarray:
        """The crops as ``(N, H, W, 3)`` uint8 (lossless: the inputs are 8-bit pixels over 255)."""
        return np.rint(self.inputs.transpose(0, 2, 3, 1) * 255.0).astype(np.uint8)


class OnnxModel:
    """One of our ONNX files under the service's engine: ``(K, 2)`` input-pixel points per crop."""

    def __init__(self, engine: Engine, crops: PersonCrops) -> None:
        self.engine = engine
        meta = self.engine.info.metadata
        self.codec = HeatmapCodec(meta.input_size, meta.heatmap_stride)
        self.crops = crops

    def predict(self) -> np.ndarray:
        points = [self.codec.decode(self.engine.run(x[None]))[0][0] for x in self.crops.inputs]
        return np.stack(points).astype(np.float64)

    def time(self, start: int, calls: int) -> list[float]:
        inputs, seconds = self.crops.inputs, []
        for k in range(calls):
            x = inputs[(start + k) % len(inputs)][None]
            t0 = time.perf_counter()
            self.engine.run(x)
            seconds.append(time.perf_counter() - t0)
        return seconds


class BlazePoseModels:
    """BlazePose's landmark models in their own process (:mod:`bench.peer_apps.blazepose_runner`)."""

    def __init__(self, crops: PersonCrops, threads: int, workdir: Path) -> None:
        self.workdir = workdir
        path = workdir / "crops.npy"
        np.save(path, crops.uint8_nhwc())
        argv = [str(peer_python("litert")), "-m", "bench.peer_apps.blazepose_runner", "--crops", str(path)]
        argv += ["--threads", str(threads)]
        for variant, model in blazepose_models().items():
            argv += ["--model", f"{variant}={model}"]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._reply()  # {"ready": N}

    def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._reply()

    def _reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the BlazePose runner exited with {self.process.wait()}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def predictor(self, variant: str) -> Callable[[], np.ndarray]:
        def predict() -> np.ndarray:
            out = self.workdir / f"{variant}.npy"
            self._ask({"op": "predict", "model": variant, "out": str(out)})
            landmarks = np.load(out)
            points = np.full((len(landmarks), len(MPII_JOINTS), 2), np.nan)
            for name, index in BLAZEPOSE_JOINTS.items():
                points[:, MPII_JOINTS.index(name)] = landmarks[:, index]
            return points

        return predict

    def timer(self, variant: str) -> Callable[[int, int], list[float]]:
        return lambda start, calls: self._ask({"op": "time", "model": variant, "start": start, "calls": calls})[
            "seconds"
        ]

    def close(self) -> None:
        if self.process.poll() is None:
            self._ask_quit()
        self.process.wait(30)

    def _ask_quit(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
        self.process.stdin.close()


def interleaved_times(
    timers: dict[str, Callable[[int, int], list[float]]], rounds: int, block: int
) -> dict[str, Stats]:
    """Each model times ``block`` calls in turn, ``rounds`` times, on the same crops: a change in machine load
    hits every model alike."""
    samples: dict[str, list[float]] = {name: [] for name in timers}
    for timer in timers.values():  # warm-up
        timer(0, 2)
    for r in range(rounds):
        for name, timer in timers.items():
            samples[name] += timer(r * block, block)
    return {name: Stats.of(s) for name, s in samples.items()}


def plot(rows: Sequence[dict[str, Any]], path: Path, subtitle: str) -> None:
    """Scatter of PCK@0.2 (12 limb joints) against ms per image, one labelled point per model."""
    width, height, left, right, top, bottom = 900, 560, 80, 30, 60, 70
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font, small = ImageFont.load_default(16), ImageFont.load_default(13)
    xs = [float(r["ms_per_image"]) for r in rows]
    ys = [float(r["pck_limbs"]) for r in rows]
    x_max = max(xs) * 1.15
    y_lo, y_hi = max(0.0, np.floor(min(ys) * 10 - 0.5) / 10), min(1.0, np.ceil(max(ys) * 10 + 0.5) / 10)

    def at(x: float, y: float) -> tuple[float, float]:
        px = left + x / x_max * (width - left - right)
        py = top + (y_hi - y) / (y_hi - y_lo) * (height - top - bottom)
        return px, py

    for tick in np.arange(y_lo, y_hi + 1e-9, 0.05):
        _, py = at(0, tick)
        draw.line([(left, py), (width - right, py)], fill=(225, 225, 225))
        draw.text((left - 8, py), f"{tick:.2f}", fill="black", font=small, anchor="rm")
    step = 10 ** np.floor(np.log10(x_max / 2)) * (2 if x_max / 10 ** np.floor(np.log10(x_max)) < 5 else 5)
    for tick in np.arange(0, x_max, step / 2 if x_max / step < 4 else step):
        px, _ = at(tick, y_lo)
        draw.line([(px, top), (px, height - bottom)], fill=(225, 225, 225))
        draw.text((px, height - bottom + 8), f"{tick:g}", fill="black", font=small, anchor="mt")
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    for row, x, y in zip(rows, xs, ys, strict=True):
        px, py = at(x, y)
        colour = (200, 30, 30) if row["family"] == "hourglass" else (30, 90, 200)
        draw.ellipse([px - 6, py - 6, px + 6, py + 6], fill=colour)
        near_right = px > left + 0.7 * (width - left - right)  # label on the left there, inside the frame
        where, anchor = ((px - 10, py - 4), "rm") if near_right else ((px + 10, py - 4), "lm")
        draw.text(where, str(row["model"]), fill=colour, font=small, anchor=anchor)
    draw.text((width / 2, 12), "LSP test: PCK@0.2 (12 limb joints) against CPU time per image", fill="black",
              font=font, anchor="mt")  # fmt: skip
    draw.text((width / 2, 34), subtitle, fill=(90, 90, 90), font=small, anchor="mt")
    draw.text(((left + width - right) / 2, height - 28), "ms per image (one model call, batch 1)", fill="black",
              font=font, anchor="mt")  # fmt: skip
    label = Image.new("RGB", (height - top - bottom, 22), "white")
    ImageDraw.Draw(label).text((label.width / 2, 2), "PCK@0.2, limbs", fill="black", font=font, anchor="mt")
    image.paste(label.rotate(90, expand=True), (6, top))
    image.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy_speed", description=__doc__)
    add_common_args(parser)
    parser.add_argument("--lsp", type=Path, default=default_lsp(), help="LSP folder (joints.mat, images/)")
    parser.add_argument("--limit", type=int, default=None, help="first N test photos (default: all; smoke: 3)")
    args = parser.parse_args(argv)
    if not has_lsp(args.lsp):
        print(f"accuracy_speed skipped: no LSP at {args.lsp} (pass --lsp DIR holding joints.mat and images/)")
        return 0
    profile = profile_of(args)
    model = bench_model(args.smoke, args.model)
    limit = args.limit or (3 if args.smoke else None)
    records = lsp_records(args.lsp, LSP_TEST[:limit] if limit else LSP_TEST, source="lsp-test")
    engine = Engine.load(model.onnx_path, cpu_session("onnxruntime"))
    print(f"cropping {len(records)} LSP test photos with the service's pipeline", flush=True)
    crops = PersonCrops(engine, records)
    int8 = int8_twin(model, args.smoke, args.lsp)
    int8_engine = Engine.load(int8, cpu_session("onnxruntime"))
    ours = {"hourglass float32": OnnxModel(engine, crops), "hourglass int8": OnnxModel(int8_engine, crops)}
    if openvino_problem("bfloat16") is None:  # the auto engine's choice on this CPU (service.inference.runtime)
        ours["hourglass bf16 (OpenVINO)"] = OnnxModel(Engine.load(model.onnx_path, cpu_session("openvino-bf16")), crops)
    threads = usable_cores()
    with tempfile.TemporaryDirectory() as tmp:
        blazepose = BlazePoseModels(crops, threads, Path(tmp))
        try:
            predictors: dict[str, Callable[[], np.ndarray]] = {name: m.predict for name, m in ours.items()}
            timers: dict[str, Callable[[int, int], list[float]]] = {name: m.time for name, m in ours.items()}
            for variant in BLAZEPOSE_VARIANTS:
                predictors[f"BlazePose {variant}"] = blazepose.predictor(variant)
                timers[f"BlazePose {variant}"] = blazepose.timer(variant)
            points = {}
            for name, predict in predictors.items():
                started = time.perf_counter()
                points[name] = crops.to_image(predict())
                print(f"  {name}: {len(records)} crops in {time.perf_counter() - started:.1f} s", flush=True)
            rounds, block = (2, 2) if args.smoke else (profile.repeat // 6, 10)
            speed = interleaved_times(timers, max(2, rounds), block)
        finally:
            blazepose.close()
    rows = []
    for name, predicted in points.items():
        scores = score_mode(predicted, records)
        family = "hourglass" if name.startswith("hourglass") else "BlazePose"
        rows.append(
            {
                "model": name,
                "family": family,
                "pck_limbs": round(float(scores.limbs), 4),
                "pck_mean14": round(float(scores.mean), 4) if family == "hourglass" else None,
                "ms_per_image": speed[name].median_ms,
                "p95_ms": speed[name].p95_ms,
                "calls_timed": speed[name].n,
            }
        )
    print_rows("accuracy against speed (LSP test, person crops)", rows)
    subtitle = (
        f"{len(records)} photos, the service's box crops; {threads} CPU threads; measured {time.strftime('%Y-%m-%d')}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    plot(rows, args.out / PLOT_NAME, subtitle)
    config = {
        "model": model.describe(),
        "int8_model": str(int8),
        "profile": profile.name,
        "lsp": str(args.lsp),
        "photos": len(records),
        "threads": threads,
        "blazepose": "@mediapipe/pose 0.5.1675469404 landmark models (pose_landmark_{lite,full,heavy}.tflite)",
        "crops": "LSP test photos, joints' box grown 25% and letterboxed to 256x256 by the service's pipeline",
        "plot": PLOT_NAME,
    }
    write_result(args.out, "accuracy_speed", config, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
