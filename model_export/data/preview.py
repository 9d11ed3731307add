"""Draw ground truth on its photos, to check left/right and the labelled flags by eye before training.

    python -m model_export.data.preview lsp --out runs/preview/lsp.jpg [--count 36] [--data-root ../shared/data]
    python -m model_export.data.preview lspet|mpii-subset|train-crops ...

Each tile is one record: the person's right side orange, left side blue, centre green (the service's
colours); unlabelled joints are left out; LSP's occluded joints and their limbs are drawn thin. ``train-crops`` shows
what the network is fed: augmented crops of the training mix with their heatmap targets' peaks.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from model_export.data import lsp
from model_export.data.people import PersonDataset, PersonRecord, lsp_records, mpii_records
from model_export.data.sources import DEFAULT_DATA_ROOT
from pose.layout import MPII, SIDE_COLOURS

TILE = 256


def tile_of(image: Image.Image, points: np.ndarray, shown: np.ndarray, strong: np.ndarray, label: str) -> Image.Image:
    """One square tile: ``image`` letterboxed to :data:`TILE`, limbs between ``shown`` joints, weak ones thin."""
    scale = TILE / max(image.size)
    small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    offset = np.array([(TILE - small.width) / 2, (TILE - small.height) / 2])
    xy = [tuple((np.asarray(p) + 0.5) * scale - 0.5 + offset) for p in points]
    tile = Image.new("RGB", (TILE, TILE), (0, 0, 0))
    tile.paste(small, (int(offset[0]), int(offset[1])))
    draw = ImageDraw.Draw(tile)
    for a, b in MPII.skeleton:
        if shown[a] and shown[b]:
            width = 3 if strong[a] and strong[b] else 1
            draw.line([xy[a], xy[b]], fill=SIDE_COLOURS[MPII.limb_side(a, b)], width=width)
    for k in np.flatnonzero(shown):
        x, y = xy[k]
        r = 3 if strong[k] else 2
        draw.ellipse((x - r, y - r, x + r, y + r), fill=SIDE_COLOURS[MPII.side(k)], outline=(255, 255, 255))
    draw.text((3, 3), label, fill=(255, 255, 0))
    return tile


def sheet(tiles: Sequence[Image.Image], columns: int = 6) -> Image.Image:
    rows = -(-len(tiles) // columns)
    out = Image.new("RGB", (columns * TILE, rows * TILE), (30, 30, 30))
    for i, tile in enumerate(tiles):
        out.paste(tile, ((i % columns) * TILE, (i // columns) * TILE))
    return out


def record_tiles(records: Sequence[PersonRecord], occluded: np.ndarray | None = None) -> list[Image.Image]:
    tiles = []
    for i, record in enumerate(records):
        with Image.open(record.image) as image:
            rgb = image.convert("RGB")
        strong = ~occluded[i] if occluded is not None else np.ones(len(record.joints), bool)
        tiles.append(tile_of(rgb, record.joints, record.labelled, strong, record.image.name))
    return tiles


def crop_tiles(dataset: PersonDataset, indices: Sequence[int]) -> list[Image.Image]:
    tiles = []
    for i in indices:
        sample = dataset[i]
        image = Image.fromarray((sample["image"].transpose(1, 2, 0) * 255).astype(np.uint8))
        shown = sample["weight"] > 0
        tiles.append(tile_of(image, sample["keypoints"], shown, shown, dataset.records[i].image.name))
    return tiles


def mpii_subset(root: Path) -> list[PersonRecord]:
    return mpii_records(root / "mpii_subset/images", root / "mpii_subset/annotations.json")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_export.data.preview", description=__doc__.split("\n")[0])
    parser.add_argument("which", choices=("lsp", "lspet", "mpii-subset", "train-crops"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=36)
    parser.add_argument("--start", type=int, default=0, help="first record")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    args = parser.parse_args(argv)
    picks = range(args.start, args.start + args.count)
    root = args.data_root
    if args.which in ("lsp", "lspet"):
        ann = lsp.load(root / args.which / "joints.mat")
        records = lsp_records(root / args.which, list(picks))
        tiles = record_tiles(records, ann.occluded[list(picks)])
    elif args.which == "mpii-subset":
        records = mpii_records(root / "mpii_subset/images", root / "mpii_subset/annotations.json")[
            picks.start : picks.stop
        ]
        tiles = record_tiles(records)
    else:
        records = (
            lsp_records(root / "lsp", list(picks))
            + mpii_records(root / "mpii_subset/images", root / "mpii_subset/annotations.json")[picks.start : picks.stop]
        )
        dataset = PersonDataset(records, train=True, whole_image_prob=0.25)
        tiles = crop_tiles(dataset, range(len(records)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet(tiles).save(args.out, quality=85)
    print(f"wrote {args.out} ({len(tiles)} tiles)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
