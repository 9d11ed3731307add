"""Staged people (the GPU recipe's data, issue 31): shards that a device call can carry, read back as the same
training and validation samples. Fixtures built here: a photo with a smooth pattern, records of both kinds (alone
in a small photo, one of several in a large one), a fake LSP folder for the command."""

from __future__ import annotations

import io
import json
from argparse import Namespace
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model_export.__main__ import main
from model_export.data.augment import default_codec
from model_export.data.people import DataError, PersonDataset, PersonRecord
from model_export.data.sources import LSP_VAL_SOURCE, mixed_training_set, validation_set
from model_export.data.staging import INDEX, MARGIN, stage, stage_person, staged_records
from pose.layout import MPII_JOINTS
from tests.helpers.fake_lsp import write_fake_lsp

K = len(MPII_JOINTS)


def photo(path: Path, width: int, height: int) -> Path:
    """A smooth colour pattern (resampling keeps it close), saved as a high-quality JPEG."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([128 + 100 * np.sin(x / 23.0), 128 + 100 * np.cos(y / 17.0), (x + y) % 256], axis=-1)
    Image.fromarray(pixels.astype(np.uint8)).save(path, quality=98)
    return path


def standing(x0: float, y0: float, height: float) -> np.ndarray:
    """16 joints of a person ``height`` pixels tall whose head top is at (x0, y0)."""
    rng = np.random.default_rng(int(x0))
    return np.stack([x0 + rng.uniform(-0.25, 0.25, K) * height, y0 + rng.uniform(0, 1, K) * height], axis=1)


@pytest.fixture
def records(tmp_path: Path) -> dict[str, list[PersonRecord]]:
    small = photo(tmp_path / "small.jpg", 220, 300)
    large = photo(tmp_path / "large.jpg", 2400, 1600)
    labelled = np.ones(K, bool)
    labelled[3] = False
    alone = PersonRecord(small, standing(110, 30, 240), labelled, True, "lsp")
    one_of_two = [
        PersonRecord(large, standing(700, 300, 900), labelled, False, "coco", (430.0, 280.0, 560.0, 940.0), 2.0e5),
        PersonRecord(large, standing(1700, 400, 800), labelled, False, "coco", (1450.0, 380.0, 500.0, 830.0), 1.6e5),
    ]
    return {"lsp": [alone], "coco": one_of_two}


def test_a_staged_person_gives_the_same_crop(records):
    """The service's crop of the staged record shows the same person, its joints where they were."""
    for record in [*records["lsp"], *records["coco"]]:
        with Image.open(record.image) as image:
            staged = stage_person(image.convert("RGB"), record, side=256)
        path = record.image.with_suffix(".staged.jpg")
        path.write_bytes(staged.jpeg)
        moved = replace(staged.record, image=path)
        raw, new = PersonDataset([record])[0], PersonDataset([moved])[0]
        have = record.labelled
        assert np.abs(raw["keypoints"] - new["keypoints"])[have].max() < 0.3  # input pixels (of 256)
        assert np.abs(raw["image"] - new["image"]).mean() < 0.03
        assert np.allclose(raw["torso_size"], new["torso_size"], rtol=0.01)


def test_large_photos_shrink_to_the_crop_and_people_alone_stay_whole(records):
    alone = records["lsp"][0]
    with Image.open(alone.image) as image:
        staged = stage_person(image.convert("RGB"), alone, side=256)
    with Image.open(io.BytesIO(staged.jpeg)) as small:
        assert small.size == (220, 300)  # never scaled up; the whole photo
    assert staged.record.alone
    person = records["coco"][0]
    with Image.open(person.image) as image:
        staged = stage_person(image.convert("RGB"), person, side=256)
    with Image.open(io.BytesIO(staged.jpeg)) as patch:
        assert max(patch.size) <= MARGIN * 256 + 1
    assert not staged.record.alone  # a patch of a larger photo: no whole-image crops of it
    assert staged.record.area == pytest.approx(person.area * (staged.record.person_box[2] / 560.0) ** 2, rel=0.01)


def test_shards_stay_under_their_size_and_read_back_by_source(records, tmp_path):
    many = {"lsp": records["lsp"] * 6, "coco": records["coco"] * 3}
    report = stage(many, tmp_path / "staged", side=128, shard_bytes=20_000)
    shards = sorted((tmp_path / "staged").glob("shard-*"))
    assert report.shards == len(shards) >= 2 and report.people == {"lsp": 6, "coco": 6}
    for shard in shards:
        jpegs = sum(f.stat().st_size for f in shard.glob("*.jpg"))
        assert jpegs <= 20_000 or len(list(shard.glob("*.jpg"))) == 1
        index = json.loads((shard / INDEX).read_text())
        assert {p["origin"] for p in index["people"]} <= {"small.jpg", "large.jpg"}
    back = staged_records(tmp_path / "staged")
    assert {name: len(people) for name, people in back.items()} == {"lsp": 6, "coco": 6}
    assert len(staged_records(shards[0])[next(iter(staged_records(shards[0])))]) >= 1  # one shard alone reads too
    assert staged_records(tmp_path / "staged", ["coco"]).keys() == {"coco"}


def test_training_reads_the_shards_instead_of_the_datasets(records, tmp_path):
    stage({"coco": records["coco"], LSP_VAL_SOURCE: records["lsp"]}, tmp_path / "staged", side=128)
    args = Namespace(dataset="coco:1,synthetic:1", staged=tmp_path / "staged", epoch_size=4, data_seed=0,
                     data_root=tmp_path / "nowhere", lsp=None, lspet=None, coco=None, mpii_images=None,
                     mpii_train=None, whole_image_prob=0.2, truncate_prob=0.3, occlusion_prob=0.4, seed=0)  # fmt: skip
    mix = mixed_training_set(args, default_codec())
    assert [len(source) for source in mix.sources][0] == 2 and mix[0]["image"].shape == (3, 256, 256)
    assert len(validation_set(args, default_codec())) == 1
    with pytest.raises(DataError, match="no staged people of lspet"):
        mixed_training_set(Namespace(**{**vars(args), "dataset": "lspet:1"}), default_codec())


def test_a_folder_without_shards_or_with_a_foreign_index_is_refused(tmp_path):
    with pytest.raises(DataError, match="no staged shards"):
        staged_records(tmp_path)
    (tmp_path / "shard-00").mkdir()
    (tmp_path / "shard-00" / INDEX).write_text(json.dumps({"people": []}))
    with pytest.raises(DataError, match="not a staged-people index"):
        staged_records(tmp_path)


def test_the_stage_command_then_training_from_the_shards(tmp_path):
    lsp = tmp_path / "lsp"
    write_fake_lsp(lsp, 1000, {i: (180, 200) for i in (*range(6), *range(900, 904))})
    out = tmp_path / "staged"
    # the fake folder holds only some photos: stage those (LSP's fit and validation ranges both)
    code = main(["stage", "--out", str(out), "--sources", "lsp,lsp-val", "--lsp", str(lsp), "--shard-mb", "1"])
    assert code == 2  # im0007 is annotated but has no photo: refused, naming it
    for i in (*range(6, 900), *range(904, 1000)):
        Image.new("RGB", (180, 200)).save(lsp / "images" / f"im{i + 1:04d}.jpg")
    assert main(["stage", "--out", str(out), "--sources", "lsp,lsp-val", "--lsp", str(lsp), "--shard-mb", "1"]) == 0
    assert {name: len(people) for name, people in staged_records(out).items()} == {"lsp": 900, LSP_VAL_SOURCE: 100}
    run = tmp_path / "run"
    argv = ["train", "--dataset", "lsp:1", "--staged", str(out), "--data-root", str(tmp_path / "nowhere"),
            "--stacks", "1", "--features", "16", "--input-size", "64", "--batch-size", "2", "--epoch-size", "4",
            "--max-steps", "2", "--epochs", "1", "--workers", "0", "--threads", "1", "--no-progress",
            "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    assert (run / "last.pt").exists()


def test_sources_staged_everywhere_are_in_each_shard_and_read_once(records, tmp_path):
    many = {"lsp": records["lsp"] * 8, "coco": records["coco"]}
    report = stage(many, tmp_path / "staged", side=128, shard_bytes=40_000, everywhere=["coco"])
    shards = sorted((tmp_path / "staged").glob("shard-*"))
    assert report.shards == len(shards) >= 2 and report.people == {"coco": 2, "lsp": 8}
    for shard in shards:
        assert len(staged_records(shard)["coco"]) == 2  # every shard alone trains on them
    together = staged_records(tmp_path / "staged")
    assert (len(together["coco"]), len(together["lsp"])) == (2, 8)
    with pytest.raises(DataError, match="alone fill"):
        stage(many, tmp_path / "tiny", side=128, shard_bytes=1_000, everywhere=["coco"])
