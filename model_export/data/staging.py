"""Staged people: the real training photos cut down to what training at 256x256 can use, in shards small enough to
travel to a lent GPU machine (each device call carries at most 64 MiB of working tree).

For each person record, one JPEG and its record with the joints, box and area mapped into it:

- a person alone in a photo that, scaled so the person's crop (the service's box square) is at most ``side``
  pixels, fits ``WHOLE_FIT`` x ``side``: the whole photo so scaled, still ``alone`` (the whole-image crops of
  training stay exact);
- anyone else: a square of ``MARGIN`` times the box square about the box's centre (room for the scale, shift and
  rotation of :data:`~model_export.data.people.REAL_AUGMENT`), scaled the same way, black where it leaves the
  photo, as the service pads; no longer ``alone`` (the patch is not the photo).

Nothing is scaled up. Shards (``shard-00/``, ...) each hold their JPEGs and a ``people.json`` index and are filled
in a shuffled order, so any one shard is a sample of every source, but for the few people of the sources staged in
every shard (COCO's, the target domain, and LSP's validation people, by default). ``python -m model_export stage``
writes them; ``--staged DIR`` makes training read every shard found under DIR instead of the datasets.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from model_export.data.people import DataError, PersonRecord, box_square

INDEX = "people.json"
FORMAT = "hourglass-serve staged people 1"
MARGIN = 1.6  # the patch's side over the box square's: REAL_AUGMENT scales up to 1.3x and shifts 8%
WHOLE_FIT = 2.0  # a photo alone with its person is staged whole while it fits this many crop sides
DEFAULT_SIDE = 256
DEFAULT_QUALITY = 90


@dataclass(frozen=True)
class StagedPerson:
    """One staged record's image (JPEG bytes) and record (its joints, box and area in that image)."""

    jpeg: bytes
    record: PersonRecord
    origin: str = ""  # the file name of the photo it was cut from (provenance only)


def stage_person(
    image: Image.Image, record: PersonRecord, side: int = DEFAULT_SIDE, quality: int = DEFAULT_QUALITY
) -> StagedPerson:
    """The staged image and record of ``record`` in ``image`` (RGB)."""
    centre, crop_side = box_square(record.box())
    scale = min(1.0, side / crop_side)
    width, height = image.size
    whole = bool(record.alone and max(width, height) * scale <= WHOLE_FIT * side)
    if whole:
        origin, region_size = np.zeros(2), np.array([width, height], float)
    else:
        patch = MARGIN * crop_side
        origin = np.floor(centre + 0.5 - patch / 2)  # pixel edges
        region_size = np.full(2, math.ceil(patch))
    out_size = np.maximum(1, np.round(region_size * scale)).astype(int)
    exact = out_size / region_size  # per axis, after rounding to whole pixels
    x0, y0 = (int(v) for v in origin)
    region = image.crop((x0, y0, x0 + int(region_size[0]), y0 + int(region_size[1])))  # black outside the photo
    staged = region.resize(tuple(int(v) for v in out_size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    staged.save(buffer, "JPEG", quality=quality)
    joints = (np.asarray(record.joints, float) + 0.5 - origin) * exact - 0.5
    box = None
    if record.person_box is not None:
        bx, by, bw, bh = record.person_box
        box = ((bx - x0) * exact[0], (by - y0) * exact[1], bw * exact[0], bh * exact[1])
    area = None if record.area is None else record.area * float(exact[0] * exact[1])
    moved = PersonRecord(Path(), joints, record.labelled, whole, record.source, box, area)
    return StagedPerson(buffer.getvalue(), moved, record.image.name)


@dataclass(frozen=True)
class StageReport:
    shards: int
    people: dict[str, int]
    bytes: int


def _staged(record: PersonRecord, name: str, side: int, quality: int) -> StagedPerson:
    try:
        with Image.open(record.image) as opened:
            image = opened.convert("RGB")
    except OSError as exc:  # FileNotFoundError included
        raise DataError(f"{record.image}: cannot be read ({exc})") from exc
    return stage_person(image, replace(record, source=name), side, quality)


def stage(
    records: Mapping[str, Sequence[PersonRecord]],
    out: Path,
    side: int = DEFAULT_SIDE,
    quality: int = DEFAULT_QUALITY,
    shard_bytes: int = 16 << 20,
    seed: int = 0,
    everywhere: Sequence[str] = (),
) -> StageReport:
    """Stage every record of each source (name -> records) into shards under ``out``, each shard's JPEGs at most
    ``shard_bytes``: the sources named in ``everywhere`` (few people: the target domain, the validation split) in
    every shard, the others dealt in one shuffled order (``seed``)."""
    shared = [_staged(r, name, side, quality) for name in everywhere for r in records.get(name, ())]
    shared_bytes = sum(len(p.jpeg) for p in shared)
    if shared and shared_bytes >= shard_bytes:
        raise DataError(f"the sources in every shard ({', '.join(everywhere)}) alone fill {shared_bytes} bytes")
    order = [(name, record) for name, people in records.items() if name not in everywhere for record in people]
    np.random.default_rng(seed).shuffle(order)  # type: ignore[arg-type]
    out.mkdir(parents=True, exist_ok=True)
    shards: list[list[StagedPerson]] = [[]]
    used = 0
    for name, record in order:
        person = _staged(record, name, side, quality)
        if shards[-1] and shared_bytes + used + len(person.jpeg) > shard_bytes:
            shards.append([])
            used = 0
        shards[-1].append(person)
        used += len(person.jpeg)
    if not shards[-1] and not shared:
        shards.pop()
    total = 0
    for number, people in enumerate(shards):
        folder = out / f"shard-{number:02d}"
        folder.mkdir(exist_ok=True)
        entries = []
        for kind, group in (("everywhere", shared), ("dealt", people)):
            for person in group:
                file = f"{person.record.source}-{len(entries):05d}.jpg"
                (folder / file).write_bytes(person.jpeg)
                entries.append({**_entry(file, person.record, person.origin), "everywhere": kind == "everywhere"})
                total += len(person.jpeg)
        (folder / INDEX).write_text(json.dumps({"format": FORMAT, "side": side, "people": entries}) + "\n")
    counts: dict[str, int] = {}
    for person in [*shared, *(p for people in shards for p in people)]:
        counts[person.record.source] = counts.get(person.record.source, 0) + 1
    return StageReport(len(shards), counts, total)


def _entry(file: str, record: PersonRecord, origin: str) -> dict:
    return {
        "image": file,
        "origin": origin,  # the photo it was cut from (provenance; never read back)
        "source": record.source,
        "joints": np.round(record.joints, 3).tolist(),
        "labelled": [bool(v) for v in record.labelled],
        "alone": bool(record.alone),
        "box": None if record.person_box is None else [round(float(v), 3) for v in record.person_box],
        "area": None if record.area is None else round(float(record.area), 3),
    }


def staged_records(folder: Path, sources: Iterable[str] | None = None) -> dict[str, list[PersonRecord]]:
    """Every record of every shard under ``folder`` (or ``folder`` itself when it is one shard), by source, the
    people staged in every shard once; ``sources`` keeps those only. DataError when there is none or an index is not
    this format."""
    folder = Path(folder)
    indexes = sorted(folder.glob(f"shard-*/{INDEX}")) or sorted(folder.glob(INDEX))
    if not indexes:
        raise DataError(f"{folder}: no staged shards (shard-*/{INDEX}); make them with `python -m model_export stage`")
    wanted = None if sources is None else set(sources)
    out: dict[str, list[PersonRecord]] = {}
    for number, index in enumerate(indexes):
        try:
            data = json.loads(index.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{index}: not readable as JSON ({exc})") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DataError(f"{index}: not a staged-people index ({FORMAT!r})")
        for entry in data["people"]:
            if wanted is not None and entry["source"] not in wanted:
                continue
            if entry.get("everywhere") and number > 0:  # the same people in every shard: read them once
                continue
            box = None if entry["box"] is None else tuple(entry["box"])
            record = PersonRecord(
                index.parent / entry["image"],
                np.asarray(entry["joints"], np.float64),
                np.asarray(entry["labelled"], bool),
                bool(entry["alone"]),
                entry["source"],
                box,
                entry["area"],
            )
            out.setdefault(entry["source"], []).append(record)
    return out
