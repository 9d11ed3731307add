"""`python -m model_export <command>`: one CLI for the model's whole life cycle.

The command line is the front door, not a library layer: it names each command's module as a string and imports
only the one that runs, so the commands that live in :mod:`evaluation` (above both the service and ``model_export``:
``evaluate``, ``quantize``, ``engine-gate``, ``pseudo-label``, ``label-audit``) share this one command without
``model_export`` importing them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> module that defines `configure(parser)` and `run(args) -> int`
COMMANDS: dict[str, tuple[str, str]] = {
    "summary": ("model_export.summary", "parameter count and multiply-accumulates"),
    "convert": ("model_export.convert", "convert a published checkpoint to ONNX"),
    "export": ("model_export.export", "export one of our training checkpoints to ONNX"),
    "person-detector": ("model_export.person_detector", "the packaged NanoDet person detector as ONNX"),
    "quantize": ("evaluation.quantize", "int8 twin of an ONNX model, calibrated on service-made inputs"),
    "deepen": ("model_export.deepen", "more stacks for a trained model, with the same predictions"),
    "stage": ("model_export.stage", "cut the real training people into shards for a lent GPU machine"),
    "train": ("model_export.train", "train a stacked hourglass"),
    "evaluate": ("evaluation.evaluate", "PCKh of a checkpoint or ONNX model; PCK@0.2 on real photos (LSP, COCO)"),
    "engine-gate": ("evaluation.engine_gate", "PCK@0.2 of the served model on each engine against ONNX Runtime"),
    "pseudo-label": ("evaluation.pseudo_labels", "label photos of people with a teacher, as a COCO folder to train on"),
    "label-audit": ("evaluation.label_audit", "list a training source's people whose left and right are swapped"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m model_export", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (module, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text)
        if name == wanted:  # import only the command that runs: keeps --help and start-up fast
            importlib.import_module(module).configure(sub_parser)
    args = parser.parse_args(argv)
    return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
