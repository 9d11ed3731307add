"""`python -m model_export stage`: the real training people cut down into shards for a lent GPU machine.

Each shard (``OUT/shard-NN/``: JPEGs and ``people.json``) stays under ``--shard-mb``, so one device call can carry
it beside the working tree, and holds every person of the ``--everywhere`` sources, so one shard alone trains on
the target domain and validates; training reads every shard it finds with ``--staged OUT``
(:mod:`model_export.data.staging`). The sources are those of ``train --dataset`` (the same records: LSP
im0001-im0900, LSPET, the MPII list, ``coco_subset``'s train2017-fit) plus ``lsp-val``, LSP im0901-im1000, which
training validates on. Test and validation photos of any other split are never staged.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from model_export.data import mpii, sources
from model_export.data.people import DataError
from model_export.data.staging import DEFAULT_QUALITY, DEFAULT_SIDE, stage

DEFAULT_SOURCES = "lsp,lspet,mpii,coco,lsp-val"
DEFAULT_EVERYWHERE = "coco,lsp-val"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder for the shards (outside the repository)")
    parser.add_argument("--sources", default=DEFAULT_SOURCES, help=f"comma-separated (default {DEFAULT_SOURCES})")
    parser.add_argument("--side", type=int, default=DEFAULT_SIDE, help="pixels of a person's crop, at most")
    parser.add_argument("--quality", type=int, default=DEFAULT_QUALITY, help="JPEG quality")
    parser.add_argument("--shard-mb", type=float, default=16.0, help="MiB of JPEGs per shard, at most")
    parser.add_argument(
        "--everywhere",
        default=DEFAULT_EVERYWHERE,
        help=f"sources staged in every shard, so that one shard trains and validates (default {DEFAULT_EVERYWHERE})",
    )
    parser.add_argument("--seed", type=int, default=0, help="the order people are dealt into shards")
    mpii.add_arguments(parser, splits=("train",))
    sources.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    names = [name.strip() for name in args.sources.split(",") if name.strip()]
    started = time.perf_counter()
    try:
        records = sources.real_records(args, names)
        everywhere = [name.strip() for name in args.everywhere.split(",") if name.strip() in names]
        shard_bytes = int(args.shard_mb * (1 << 20))
        report = stage(records, args.out, args.side, args.quality, shard_bytes, args.seed, everywhere)
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    people = ", ".join(f"{name} {count}" for name, count in report.people.items())
    print(
        f"staged {sum(report.people.values())} people ({people}) into {report.shards} shards under {args.out}: "
        f"{report.bytes / (1 << 20):.1f} MiB of JPEGs in {time.perf_counter() - started:.0f} s"
    )
    return 0
