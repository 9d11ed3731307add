"""Print the model card's LSP-test table from weights/default.json (written by scripts/ship_default.sh).

    .venv/bin/python scripts/model_card_table.py [weights/default.json]

Rows in the card's order (head down, right before left), columns: box, whole, and both with flip + DARK.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = (
    "head_top", "upper_neck", "right_shoulder", "left_shoulder", "right_elbow", "left_elbow", "right_wrist",
    "left_wrist", "right_hip", "left_hip", "right_knee", "left_knee", "right_ankle", "left_ankle",
)  # fmt: skip
COLUMNS = (("lsp_test", "box"), ("lsp_test", "whole"), ("lsp_test_flip_dark", "box"), ("lsp_test_flip_dark", "whole"))


def table(doc: dict) -> str:
    scores = [doc[run]["modes"][mode]["pck@0.2"] for run, mode in COLUMNS]
    lines = [
        "| joint | box | whole | box, flip + DARK | whole, flip + DARK |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {joint} | " + " | ".join(f"{s['per_joint'][joint]:.3f}" for s in scores) + " |" for joint in ROWS]
    lines.append("| **Mean (14 joints)** | " + " | ".join(f"**{s['mean']:.3f}**" for s in scores) + " |")
    lines.append("| Mean (12 limb joints) | " + " | ".join(f"{s['limbs']:.3f}" for s in scores) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "weights/default.json")
    print(table(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
