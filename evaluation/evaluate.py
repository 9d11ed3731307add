"""`python -m model_export evaluate`: PCKh of a training checkpoint or an ONNX model; PCK@0.2 on real photos.

``--dataset lsp-test`` scores LSP's test photos through the service's own pipeline
(:mod:`evaluation.photo_eval`), ``lsp-val`` its validation photos (im0901-im1000, held out of
training) the same way, ``coco`` the people of a COCO keypoints file (``--coco-annotations``); the
rest of this module scores crops:

The model runs on top-down crops; its last stack's heatmaps go through the service's decoder
(:class:`pose.codec.HeatmapCodec`), optionally averaged with the mirrored crop's heatmaps
(flip test). On MPII the predictions are mapped back to the original image with each sample's
``inverse`` matrix and scored there against the official ground truth and head boxes; on the
synthetic figures they are scored in crop pixels with each figure's own head size.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from evaluation import people_eval, photo_eval, served
from model_export.checkpoint import CheckpointError, TrainingCheckpoint
from model_export.data import mpii
from model_export.data.augment import default_codec
from model_export.data.lsp import LSP_TEST
from model_export.data.mpii import SOURCE_HEAD_SIZE, SOURCE_KEYPOINTS, SOURCE_VISIBLE, MPIIDataError
from model_export.data.people import DataError, PersonRecord, coco_records, lsp_records, mpii_records
from model_export.data.sources import DEFAULT_DATA_ROOT, LSP_VAL
from model_export.data.synthetic import SyntheticPoseDataset
from model_export.metrics import PCKhResult, pckh
from pose.codec import REFINE_METHODS, HeatmapCodec, flip_heatmaps
from pose.contract import DEFAULT_HEATMAP_STRIDE, DEFAULT_INPUT_SIZE, ModelMetadata
from pose.geometry import Affine
from pose.layout import KeypointLayout
from service.cpus import cpu_model
from service.inference.engine import Engine, ModelInfo, ModelLoadError
from service.inference.runtime import Runtime, cpu_session
from service.settings import (
    EngineChoice,
)

THRESHOLDS: tuple[float, ...] = (0.5, 0.1)
DEFAULT_SYNTHETIC_COUNT = 1000  # held-out figures scored by default
PHOTO_SPLITS = {"lsp-test": LSP_TEST, "lsp-val": LSP_VAL}  # --dataset -> 0-based LSP image numbers
PHOTO_DATASETS: tuple[str, ...] = (*PHOTO_SPLITS, "coco", "mpii-subset")  # scored through the service's pipeline


class EvaluationError(Exception):
    """A model or dataset that cannot be evaluated; the CLI prints it and exits with status 2."""


class Runner(Protocol):
    """A model as evaluation sees it: a batch of crops in, the last stack's heatmaps out."""

    layout: KeypointLayout
    input_size: tuple[int, int]  # (H, W)
    stride: int

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """``(N, 3, H, W)`` float32 RGB in [0, 1] -> ``(N, K, H/stride, W/stride)`` float32."""
        ...


class OnnxRunner:
    """An exported model loaded by the service's own engine (its contract checks included), on the CPU."""

    def __init__(self, path: str | Path, threads: int | None = None, engine: EngineChoice = "auto") -> None:
        path = Path(path)
        if not path.is_file():
            raise EvaluationError(f"{path}: ONNX model not found")
        try:
            self.engine = Engine.load(path, cpu_session(engine, threads or 0))
        except ModelLoadError as exc:
            raise EvaluationError(str(exc)) from exc
        meta = self.engine.info.metadata
        self.layout = meta.layout
        self.input_size = meta.input_size
        self.stride = meta.heatmap_stride
        self.description = f"onnx:{path} ({self.engine.info.runtime.label})"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.engine.run(np.ascontiguousarray(images, np.float32))


class TorchRunner:
    """A :class:`~model_export.model.StackedHourglass` in eval mode on the CPU (or ``device``)."""

    def __init__(
        self,
        model: Any,
        layout: KeypointLayout | None = None,
        input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
        device: str = "cpu",
        description: str = "torch",
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.layout = layout or KeypointLayout.default_for(model.joints)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.stride = DEFAULT_HEATMAP_STRIDE
        self.description = description

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> TorchRunner:
        """Load a training checkpoint (``model`` state dict + ``config``, as ``train`` writes it)."""
        try:
            checkpoint = TrainingCheckpoint.read(path)
            model, layout = checkpoint.build_model(), checkpoint.keypoint_layout()
        except CheckpointError as exc:
            message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            raise EvaluationError(message) from exc
        return cls(model, layout, checkpoint.input_size, device=device, description=f"checkpoint:{path}")

    def __call__(self, images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(images, np.float32)).to(self.device)
            return self.model(x)[:, -1].float().cpu().numpy()


def predict_dataset(
    runner: Runner,
    dataset: Sequence[dict[str, Any]],
    *,
    flip: bool = False,
    refine: str = "quarter",
    limit: int | None = None,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run ``runner`` over ``dataset`` and decode; returns ``(pred, gt, visible, head_size)``.

    Samples are the dicts of :mod:`model_export.data.augment`. Where a sample carries ground truth
    in source pixels (``source_keypoints``, ``source_visible``, ``source_head_size``, as MPII's do)
    predictions are mapped there with its ``inverse``; otherwise everything stays in crop pixels.
    ``pred``/``gt`` are ``(N, K, 2)``, ``visible`` ``(N, K)`` bool, ``head_size`` ``(N,)``.
    """
    if refine not in REFINE_METHODS:
        raise ValueError(f"refine must be one of {REFINE_METHODS}, got {refine!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    codec = HeatmapCodec(runner.input_size, runner.stride)
    flip_index = runner.layout.flip_index
    total = len(dataset) if limit is None else min(int(limit), len(dataset))
    preds, gts, visibles, heads = [], [], [], []
    for start in range(0, total, batch_size):
        samples = [dataset[i] for i in range(start, min(start + batch_size, total))]
        images = np.stack([np.asarray(s["image"], np.float32) for s in samples])
        if images.shape[2:] != runner.input_size:
            raise EvaluationError(f"dataset crops are {images.shape[2:]} but the model expects {runner.input_size}")
        heatmaps = runner(images)
        if heatmaps.shape[1] != runner.layout.num_joints:
            raise EvaluationError(f"model outputs {heatmaps.shape[1]} joints, layout has {runner.layout.num_joints}")
        if flip:
            mirrored = runner(np.ascontiguousarray(images[..., ::-1]))
            heatmaps = 0.5 * (heatmaps + flip_heatmaps(mirrored, flip_index))
        coords, _ = codec.decode(heatmaps, refine=refine)  # type: ignore[arg-type]
        for sample, xy in zip(samples, coords, strict=True):
            if SOURCE_KEYPOINTS in sample:
                preds.append(Affine.from_matrix(sample["inverse"]).to_input(xy))
                gts.append(np.asarray(sample[SOURCE_KEYPOINTS], np.float64))
                visibles.append(np.asarray(sample[SOURCE_VISIBLE]) > 0)
                heads.append(float(sample[SOURCE_HEAD_SIZE]))
            else:
                preds.append(xy.astype(np.float64))
                gts.append(np.asarray(sample["keypoints"], np.float64))
                visibles.append(np.asarray(sample["visible"]) > 0)
                heads.append(float(sample["head_size"]))
        if progress is not None:
            progress(min(start + batch_size, total), total)
    k = runner.layout.num_joints
    if not preds:
        return np.zeros((0, k, 2)), np.zeros((0, k, 2)), np.zeros((0, k), bool), np.zeros(0)
    return np.stack(preds), np.stack(gts), np.stack(visibles), np.asarray(heads)


def score(
    pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, head_size: np.ndarray, layout: KeypointLayout
) -> dict[float, PCKhResult]:
    """PCKh at every threshold of :data:`THRESHOLDS`."""
    return {t: pckh(pred, gt, visible, head_size, threshold=t, layout=layout) for t in THRESHOLDS}


def report(results: dict[float, PCKhResult], layout: KeypointLayout, meta: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready summary: per-joint accuracy and mean at each threshold (NaN -> null)."""

    def num(x: float) -> float | None:
        return None if math.isnan(float(x)) else round(float(x), 6)

    out: dict[str, Any] = dict(meta)
    for t, r in results.items():
        out[f"pckh@{t}"] = {
            "mean": num(r.mean),
            "per_joint": {name: num(v) for name, v in zip(layout.names, r.per_joint, strict=True)},
        }
    first = next(iter(results.values()))
    out["counts"] = {name: int(c) for name, c in zip(layout.names, first.counts, strict=True)}
    return out


# ------------------------------------------------------------------ CLI
def configure(parser: argparse.ArgumentParser) -> None:
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", metavar="CKPT", help="a training checkpoint (.pt)")
    model.add_argument("--onnx", metavar="MODEL", help="an exported ONNX model")
    parser.add_argument(
        "--dataset",
        choices=("synthetic", "mpii", *PHOTO_DATASETS),
        default="synthetic",
        help="lsp-test: LSP im1001-im2000 through the service's pipeline, PCK@0.2 of the torso; lsp-val: the same "
        "for im0901-im1000, the validation split that picks models; coco: a COCO person-keypoints file the same way "
        "(its 12 limb joints); mpii-subset: the MPII frames of --mpii-subset the same way",
    )
    parser.add_argument(
        "--mode",
        choices=("box", "whole", "both", "people"),
        default="both",
        help="photos: the person box passed as bbox (COCO's, else the joints' box), the whole photo (people alone "
        "in it: the top-level answer), or both; people: every person of every photo, whole (detection recall and "
        "precision, matched PCK, COCO keypoint AP)",
    )
    served.add_arguments(parser)
    parser.add_argument("--coco-split", metavar="SPLIT", help="only the photos of this coco_split (e.g. val2017)")
    parser.add_argument(
        "--mpii-subset", metavar="DIR", default=str(DEFAULT_DATA_ROOT / "mpii_subset"), help="annotations.json, images/"
    )
    parser.add_argument(
        "--lsp", metavar="DIR", default=str(DEFAULT_DATA_ROOT / "lsp"), help="LSP folder (joints.mat, images/)"
    )
    parser.add_argument(
        "--coco-annotations", metavar="JSON", type=Path, help="COCO person keypoints (person_keypoints_val2017.json)"
    )
    parser.add_argument(
        "--coco-images", metavar="DIR", type=Path, help="the images it names; default: the annotations' folder"
    )
    parser.add_argument("--flip", action="store_true", help="average with the mirrored crop's heatmaps")
    parser.add_argument("--refine", choices=REFINE_METHODS, default="quarter", help="sub-pixel refinement")
    parser.add_argument(
        "--limit",
        type=served.positive_int,
        metavar="N",
        help=f"score the first N samples (synthetic: default {DEFAULT_SYNTHETIC_COUNT})",
    )
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    parser.add_argument("--batch-size", type=served.positive_int, default=16)
    parser.add_argument("--device", default="cpu", help="torch device for --checkpoint")
    parser.add_argument("--data-seed", type=int, default=0, help="base seed of the synthetic figures")
    mpii.add_arguments(parser, splits=("val",))


def build_dataset(args: argparse.Namespace, runner: Runner) -> Sequence[dict[str, Any]]:
    """The evaluation split named by ``--dataset``."""
    codec = default_codec(runner.input_size)
    if args.dataset == "mpii":
        if getattr(args, "mpii_headboxes", None) is None:
            raise MPIIDataError("--mpii-headboxes is required for MPII PCKh: the path of mpii_gt_val.mat")
        return mpii.dataset_from_args(args, "val", codec=codec)
    return heldout_synthetic(args.limit or DEFAULT_SYNTHETIC_COUNT, codec, base_seed=args.data_seed)


def heldout_synthetic(count: int, codec: HeatmapCodec | None = None, base_seed: int = 0) -> Sequence[dict[str, Any]]:
    """The first ``count`` figures of the synthetic held-out split, prepared as for training's validation."""
    return SyntheticPoseDataset("heldout", length=count, base_seed=base_seed, codec=codec)


def run(args: argparse.Namespace) -> int:
    if args.dataset in PHOTO_DATASETS:
        return run_photos(args)
    try:
        runner: Runner = (
            OnnxRunner(args.onnx) if args.onnx else TorchRunner.from_checkpoint(args.checkpoint, device=args.device)
        )
        dataset = build_dataset(args, runner)
        pred, gt, visible, head = predict_dataset(
            runner,
            dataset,
            flip=args.flip,
            refine=args.refine,
            limit=args.limit,
            batch_size=args.batch_size,
            progress=_progress_bar(),
        )
    except (EvaluationError, MPIIDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(pred) == 0:
        print("error: no samples to evaluate", file=sys.stderr)
        return 2
    results = score(pred, gt, visible, head, runner.layout)
    space = "source image pixels" if args.dataset == "mpii" else "crop pixels"
    print(f"{runner.description}  dataset={args.dataset}  samples={len(pred)}  flip={args.flip}  refine={args.refine}")
    print(results[0.5].table(runner.layout))
    print(f"{'Mean@0.1':<16}{results[0.1].mean:>10.4f}")
    print(f"(PCKh in {space}; the mean leaves out pelvis and thorax)")
    if args.json:
        meta = {
            "model": runner.description,
            "dataset": args.dataset,
            "samples": len(pred),
            "flip": bool(args.flip),
            "refine": args.refine,
        }
        if args.dataset == "synthetic":
            meta.update(split="heldout", data_seed=args.data_seed)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report(results, runner.layout, meta), indent=2) + "\n")
    return 0


def _progress_bar() -> Callable[[int, int], None] | None:
    """A tqdm bar on stderr when tqdm is installed and stderr is a terminal."""
    if not sys.stderr.isatty():
        return None
    bar: list[Any] = []

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(tqdm(total=total, unit="img", desc="evaluate", file=sys.stderr))
        bar[0].update(done - bar[0].n)
        if done >= total:
            bar[0].close()

    return update


# ------------------------------------------------------------------ real photos
def photo_model(args: argparse.Namespace) -> tuple[Any, Callable[[np.ndarray], np.ndarray], str]:
    """``(ModelInfo, blocking model call, description)`` of ``--onnx`` (the service's engine) or ``--checkpoint``."""
    if args.onnx:
        runner = OnnxRunner(args.onnx, engine=args.engine)
        return runner.engine.info, runner.engine.run, runner.description
    runner = TorchRunner.from_checkpoint(args.checkpoint, device=args.device)
    metadata = ModelMetadata(layout=runner.layout, input_size=runner.input_size, heatmap_stride=runner.stride)
    runtime = Runtime("torch", torch.__version__, "float32", args.device, cpu_model())
    info = ModelInfo(Path(args.checkpoint), "checkpoint", "", metadata, runtime)
    return info, runner, runner.description


def photo_records(args: argparse.Namespace) -> list[PersonRecord]:
    """The annotated people ``--dataset`` names (LSP's test or validation split, a COCO keypoints file, or the
    MPII frames of ``--mpii-subset``)."""
    if args.dataset == "coco":
        if args.coco_annotations is None:
            raise DataError("--dataset coco needs --coco-annotations (a COCO person-keypoints JSON file)")
        images = args.coco_images or Path(args.coco_annotations).parent
        records = coco_records(args.coco_annotations, images, split=args.coco_split)
        return records[: args.limit] if args.limit else records
    if args.dataset == "mpii-subset":
        folder = Path(args.mpii_subset)
        records = mpii_records(folder / "images", folder / "annotations.json", source="mpii-subset")
        return records[: args.limit] if args.limit else records
    split = PHOTO_SPLITS[args.dataset]
    return lsp_records(args.lsp, split[: args.limit] if args.limit else split, source=args.dataset)


def run_photos(args: argparse.Namespace) -> int:
    """``--dataset lsp-test``, ``lsp-val``, ``coco`` or ``mpii-subset``: PCK@0.2 per joint, over 14 and 12 limb
    joints, per mode; ``--mode people``: every person (:mod:`evaluation.people_eval`)."""
    modes = photo_eval.MODES if args.mode == "both" else (args.mode,)
    try:
        info, model_call, description = photo_model(args)
        records = photo_records(args)
        if not records:
            raise DataError(f"{args.dataset}: no annotated person to score")
        detector = served.person_detector(args)
        if args.mode == "people":
            return people_eval.run(args, info, model_call, description, records, detector, _progress_bar())
        results = {}
        for mode in modes:
            scored = photo_eval.scored_records(records, mode)
            pred = photo_eval.predict_photos(
                info, model_call, scored, mode, args.refine, args.flip, detector, progress=_progress_bar()
            )
            results[mode] = (len(scored), photo_eval.score_mode(pred, scored, info.metadata.layout))
    except (EvaluationError, DataError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{description}  dataset={args.dataset}  people={len(records)}  flip={args.flip}  refine={args.refine}")
    for mode, (count, scores) in results.items():
        box = "the annotated box" if args.dataset == "coco" else "the joints box"
        people = f"{count} {'person' if count == 1 else 'people'}"
        print(f"\n[{mode}] {f'bbox = {box}' if mode == 'box' else 'whole photo, no box'}, {people}")
        print(scores.table(info.metadata.layout))
    print("(PCK@0.2 of the torso diameter in image pixels; PCKh@0.5 with a neck-to-head-top head size)")
    if args.json:
        report_json = {
            "model": description,
            "dataset": args.dataset,
            "photos": len({r.image for r in records}),
            "people": len(records),
            "flip": bool(args.flip),
            "refine": args.refine,
            "modes": {
                mode: {"people": count, **scores.to_json(info.metadata.layout)}
                for mode, (count, scores) in results.items()
            },
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report_json, indent=2) + "\n")
    return 0
