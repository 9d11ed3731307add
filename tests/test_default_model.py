"""The shipped model still scores on freshly generated held-out synthetic figures.

``weights/default.json`` holds what ``scripts/ship_default.sh`` measured when the model was made; its
``synthetic`` entry is ``python -m model_export evaluate --onnx weights/default.onnx --dataset synthetic``,
whose ``pckh@0.5.mean`` minus 0.03 is the floor here (the figures are deterministic, so the score on
them is too; CI has no real photos to score, those are guarded by ``tests/test_service_photo.py``). A
regression in the model, the generator, the crop recipe or the decoder drops the score under it: an
untrained model scores about 0.02. Both files are part of the product: if either is missing the test fails.
The skier of the COCO test photo is rescored too, and must give the counts the model card quotes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.evaluate import OnnxRunner, heldout_synthetic, predict_dataset, score
from pose.layout import MPII_JOINTS

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
MODEL = WEIGHTS / "default.onnx"
MEASURED = WEIGHTS / "default.json"
FIGURES = 96
MARGIN = 0.03


def floor_from(measured: dict) -> float:
    """The measured held-out PCKh@0.5 mean minus the margin."""
    try:
        value = float(measured["pckh@0.5"]["mean"])
    except (KeyError, TypeError, ValueError) as exc:
        raise AssertionError(f"{MEASURED} has no numeric 'pckh@0.5'.'mean' (the evaluate --json format)") from exc
    return value - MARGIN


@pytest.mark.slow
def test_default_model_meets_its_heldout_pckh_floor() -> None:
    assert MODEL.is_file(), f"{MODEL} is missing: the service's default model must be committed"
    assert MEASURED.is_file(), f"{MEASURED} is missing: write it with `python -m model_export evaluate --json`"
    measured = json.loads(MEASURED.read_text())["synthetic"]
    floor = floor_from(measured)
    runner = OnnxRunner(MODEL)
    assert runner.layout.names == MPII_JOINTS
    dataset = heldout_synthetic(FIGURES, base_seed=int(measured.get("data_seed", 0)))
    pred, gt, visible, head = predict_dataset(
        runner, dataset, flip=bool(measured.get("flip", False)), refine=str(measured.get("refine", "quarter"))
    )
    results = score(pred, gt, visible, head, runner.layout)
    table = results[0.5].table(runner.layout)
    assert results[0.5].mean >= floor, f"held-out PCKh@0.5 {results[0.5].mean:.4f} < floor {floor:.4f}\n{table}"


def test_model_card_table_is_the_measured_one() -> None:
    """The model card's LSP-test table is ``scripts/model_card_table.py`` of ``weights/default.json``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "model_card_table", WEIGHTS.parent / "scripts" / "model_card_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated = module.table(json.loads(MEASURED.read_text()))
    assert generated in (WEIGHTS / "README.md").read_text(), "regenerate: python scripts/model_card_table.py"


@pytest.mark.slow
def test_skier_counts_are_the_measured_ones(tmp_path: Path) -> None:
    """The model card's COCO-photo counts are ``coco_skier`` in ``weights/default.json``, and the shipped model
    still gives them: ``python -m model_export evaluate --dataset coco`` on ``tests/data``'s skier, both modes."""
    from model_export.__main__ import main

    measured = json.loads(MEASURED.read_text())["coco_skier"]["modes"]
    out = tmp_path / "coco.json"
    fixture = WEIGHTS.parent / "tests" / "data" / "000000000785_keypoints.json"
    argv = ["evaluate", "--onnx", str(MODEL), "--dataset", "coco", "--coco-annotations", str(fixture)]
    assert main([*argv, "--json", str(out)]) == 0
    again = json.loads(out.read_text())["modes"]
    for mode in ("box", "whole"):
        assert again[mode]["pck@0.2"]["limbs_correct"] == measured[mode]["pck@0.2"]["limbs_correct"], mode
