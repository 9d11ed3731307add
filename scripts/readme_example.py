"""The README's example answer and example person box, computed with the shipped models on the README's photo.

    .venv/bin/python scripts/readme_example.py            # prints the two blocks
    .venv/bin/python scripts/readme_example.py --readme   # writes them into README.md between their markers

``POST /predict`` of ``tests/data/000000000785.jpg`` (a skier, COCO val2017 image 785) as the default service
answers it, on ONNX Runtime float32 so that the numbers do not depend on the CPU's bfloat16 support; the example
``bbox`` is the detector's box of that skier, rounded to whole pixels. ``tests/test_readme_example.py`` fails
when the README's blocks no longer match what the shipped model answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.http.schemas import ModelRef, PoseResult  # noqa: E402
from service.inference.detector import PersonDetector  # noqa: E402
from service.inference.engine import Engine  # noqa: E402
from service.inference.pipeline import PredictOptions, Upload, build_pipeline  # noqa: E402
from service.settings import Settings  # noqa: E402

PHOTO = ROOT / "tests" / "data" / "000000000785.jpg"
README = ROOT / "README.md"
SHOWN_KEYPOINTS = 3  # of the 16: the rest is elided in the README
MARKERS = {"answer": "example-answer", "bbox": "example-bbox"}


def predict() -> dict:
    """The service's answer for the photo (the default settings, ONNX Runtime float32), timings left out."""
    settings = Settings(engine="onnxruntime", _env_file=None)
    engine = Engine.from_settings(settings)
    detector = PersonDetector.from_settings(settings)
    pipeline = build_pipeline(engine, settings, detector=detector)
    upload = Upload(PHOTO.read_bytes(), "image/jpeg", PHOTO.name)
    [prediction] = asyncio.run(pipeline.predict_uploads([upload], PredictOptions()))
    model = ModelRef(name=engine.info.name, version=engine.info.version)
    return PoseResult.from_prediction(prediction, pipeline.layout.names, model).model_dump(mode="json")


def _keypoint_lines(keypoints: list[dict], indent: str) -> list[str]:
    lines = [f"{indent}{json.dumps(k)}," for k in keypoints[:SHOWN_KEYPOINTS]]
    rest = ", ".join(k["name"] for k in keypoints[SHOWN_KEYPOINTS:])
    return [*lines, f"{indent}... {len(keypoints) - SHOWN_KEYPOINTS} more: {rest}"]


def blocks(answer: dict) -> dict[str, str]:
    """The README's two blocks: the abbreviated JSON answer and the example bbox."""
    first = answer["people"][0]
    x, y, w, h = (first["box"][k] for k in ("x", "y", "width", "height"))
    bbox = f"{round(x)},{round(y)},{round(w)},{round(h)}"
    lines = ["```", "{", '  "keypoints": [', *_keypoint_lines(answer["keypoints"], "    "), "  ],", '  "people": [']
    for person in answer["people"]:
        box = json.dumps(person["box"])
        lines += [
            f'    {{"box": {box}, "score": {person["score"]}, "source": "{person["source"]}",',
            '     "keypoints": [...]},',
        ]
    lines += [
        "  ],",
        f'  "image": {json.dumps(answer["image"])},',
        f'  "model": {json.dumps(answer["model"])},',
        '  "timings_ms": {"decode": ..., "detect": ..., "preprocess": ..., "inference": ..., "postprocess": ...}',
        "}",
        "```",
    ]
    return {"answer": "\n".join(lines), "bbox": f"`bbox={bbox}`"}


def _span(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {MARKERS[name]} -->\n)(.*?)(\n<!-- /{MARKERS[name]} -->)", re.DOTALL)


def readme_blocks(text: str) -> dict[str, str]:
    """The blocks as the README has them (KeyError naming a missing marker)."""
    found = {}
    for name in MARKERS:
        match = _span(name).search(text)
        if match is None:
            raise KeyError(f"README.md has no <!-- {MARKERS[name]} --> block")
        found[name] = match[2]
    return found


def write_readme(new: dict[str, str]) -> None:
    text = README.read_text()
    for name, block in new.items():
        text = _span(name).sub(lambda m, b=block: m[1] + b + m[3], text)
    README.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", action="store_true", help="write the blocks into README.md")
    args = parser.parse_args(argv)
    new = blocks(predict())
    print("\n\n".join(new.values()))
    if args.readme:
        write_readme(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
