"""The named training sources of ``--dataset lsp:2,lspet:5,mpii:2,synthetic:0.5`` and their path flags.

``lsp``       LSP images im0001..im0900 (im0901..im1000 are held out for validation; im1001..im2000 are the test set)
``lspet``     all 10,000 LSP Extended images
``mpii``      an MMPose-format MPII list (``--mpii-train``, ``--mpii-images``; no head boxes needed)
``coco``      ``coco_subset``'s train2017 photos less its held-out third (``train2017-fit``; COCO's boxes, the 12 limb
              joints); ``train2017-val`` picks models, and its val2017 photos are never trained on
``pseudo``    a pseudo-labelled folder (``--pseudo DIR``, made by ``python -m model_export pseudo-label``): every
              person in it, the 12 limb joints its teacher was confident of
``synthetic`` the built-in synthetic figures

With ``--staged DIR`` the real sources (and LSP's validation people) are read from the shards of
``python -m model_export stage`` under DIR instead (:mod:`model_export.data.staging`): what a lent GPU machine gets.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from model_export.data.coco import TRAIN_FIT
from model_export.data.mixing import MixedDataset, parse_mix
from model_export.data.people import (
    REAL_AUGMENT,
    DataError,
    PersonDataset,
    PersonRecord,
    coco_records,
    lsp_records,
    mirror_labels,
    mpii_records,
    read_mirrored,
)
from model_export.data.staging import staged_records
from model_export.data.synthetic import SyntheticPoseDataset
from pose.codec import HeatmapCodec

MIX_SOURCES: tuple[str, ...] = ("lsp", "lspet", "mpii", "coco", "pseudo", "synthetic")
LSP_FIT = range(900)  # im0001 .. im0900
LSP_VAL = range(900, 1000)  # im0901 .. im1000
LSP_VAL_SOURCE = "lsp-val"  # LSP's validation people, by that name among staged records
REAL_SOURCES: tuple[str, ...] = ("lsp", "lspet", "mpii", "coco", "pseudo", LSP_VAL_SOURCE)
DEFAULT_DATA_ROOT = Path("../shared/data")

__all__ = ["DataError", "MIX_SOURCES", "add_arguments", "mixed_training_set", "validation_set"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("real photos (with --dataset lsp:...,lspet:...,mpii:...)")
    group.add_argument("--lsp", metavar="DIR", type=Path, help="LSP folder (joints.mat, images/); default DATA/lsp")
    group.add_argument("--lspet", metavar="DIR", type=Path, help="LSPET folder; default DATA/lspet")
    group.add_argument(
        "--data-root", metavar="DATA", type=Path, default=DEFAULT_DATA_ROOT, help="where lsp/ and lspet/ live"
    )
    group.add_argument(
        "--whole-image-prob",
        type=float,
        default=0.25,
        help="share of real training crops that are the whole photo letterboxed (the service's no-box path)",
    )
    group.add_argument(
        "--coco",
        metavar="DIR",
        type=Path,
        help="COCO folder (person_keypoints.json, images/); default DATA/coco_subset",
    )
    group.add_argument(
        "--pseudo",
        metavar="DIR",
        type=Path,
        help="pseudo-labelled folder (person_keypoints.json, images/) of python -m model_export pseudo-label",
    )
    group.add_argument(
        "--mirrored",
        metavar="FILE",
        type=Path,
        action="append",
        help="a label-audit list: swap left and right back for its source's people it names (repeatable; applied "
        "when the datasets are read, so a staged run gets it from `stage`)",
    )
    group.add_argument(
        "--staged",
        metavar="DIR",
        type=Path,
        help="read the real sources from the staged shards under DIR (python -m model_export stage)",
    )
    group.add_argument(
        "--truncate-prob", type=float, default=0.0, help="share of box crops whose person the photo's edge cuts off"
    )
    group.add_argument(
        "--occlusion-prob", type=float, default=0.0, help="share of real crops with a patch covering part of them"
    )
    group.add_argument(
        "--distractor-prob",
        type=float,
        default=0.0,
        help="share of real box crops with another person of the same source pasted beside theirs",
    )


def _folder(args: Any, name: str) -> Path:
    explicit = getattr(args, name, None)
    return Path(explicit) if explicit is not None else Path(args.data_root) / name


def mixed_training_set(args: Any, codec: HeatmapCodec) -> MixedDataset:
    """The weighted mix named by ``args.dataset`` (``args``: the parsed flags, or a training config with the same
    names); raises ValueError or DataError naming what is wrong."""
    entries = parse_mix(args.dataset)
    unknown = [e.name for e in entries if e.name not in MIX_SOURCES]
    if unknown:
        raise ValueError(f"unknown dataset {', '.join(unknown)}; choose from {', '.join(MIX_SOURCES)}")
    staged = _staged(args, [e.name for e in entries if e.name != "synthetic"])
    datasets = []
    for entry in entries:
        if entry.name == "synthetic":
            datasets.append(
                SyntheticPoseDataset("train", length=args.epoch_size, base_seed=args.data_seed, codec=codec)
            )
            continue
        records = staged[entry.name] if staged is not None else real_records(args, [entry.name])[entry.name]
        datasets.append(
            PersonDataset(
                records,
                train=True,
                codec=codec,
                augment=replace(REAL_AUGMENT, occlusion_prob=args.occlusion_prob),
                whole_image_prob=args.whole_image_prob,
                truncate_prob=args.truncate_prob,
                distractor_prob=getattr(args, "distractor_prob", 0.0),
                seed=args.seed,
            )
        )
    return MixedDataset(
        datasets, [e.weight for e in entries], args.epoch_size, seed=args.seed, names=[e.name for e in entries]
    )


def validation_set(args: Any, codec: HeatmapCodec) -> PersonDataset:
    """LSP im0901..im1000 with the service's box crop (held out of the ``lsp`` source)."""
    staged = _staged(args, [LSP_VAL_SOURCE])
    if staged is not None:
        return PersonDataset(staged[LSP_VAL_SOURCE], codec=codec)
    return PersonDataset(lsp_records(_folder(args, "lsp"), LSP_VAL), codec=codec)


def _staged(args: Any, names: list[str]) -> dict[str, list[PersonRecord]] | None:
    """The staged records of ``names`` when ``args.staged`` is set (DataError for a source with none), else None."""
    folder = getattr(args, "staged", None)
    if folder is None:
        return None
    records = staged_records(Path(folder), names)
    missing = [name for name in names if not records.get(name)]
    if missing:
        raise DataError(f"{folder}: no staged people of {', '.join(missing)}")
    return records


def real_records(args: Any, names: list[str]) -> dict[str, list[PersonRecord]]:
    """The records of the real sources ``names`` (``lsp-val``: LSP's validation people) from the datasets, for
    staging: the same records the sources train on."""
    out: dict[str, list[PersonRecord]] = {}
    for name in names:
        if name == LSP_VAL_SOURCE:
            out[name] = lsp_records(_folder(args, "lsp"), LSP_VAL)
        elif name == "mpii":
            if args.mpii_images is None or args.mpii_train is None:
                raise DataError("the mpii source needs --mpii-images and --mpii-train (an MMPose-format list)")
            out[name] = mpii_records(args.mpii_images, args.mpii_train)
        elif name == "coco":
            folder = Path(args.coco) if args.coco is not None else Path(args.data_root) / "coco_subset"
            out[name] = coco_records(folder / "person_keypoints.json", folder / "images", split=TRAIN_FIT)
        elif name == "pseudo":
            if getattr(args, "pseudo", None) is None:
                raise DataError("the pseudo source needs --pseudo DIR (python -m model_export pseudo-label makes it)")
            folder = Path(args.pseudo)
            out[name] = coco_records(folder / "person_keypoints.json", folder / "images", source="pseudo")
        elif name in ("lsp", "lspet"):
            out[name] = lsp_records(_folder(args, name), LSP_FIT if name == "lsp" else None, source=name)
        else:
            raise ValueError(f"unknown real source {name!r}; choose from {', '.join(REAL_SOURCES)}")
    for path in getattr(args, "mirrored", None) or ():
        source, names = read_mirrored(path)
        if source in out:
            out[source] = mirror_labels(out[source], names)
    return out
