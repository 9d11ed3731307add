"""Convert checkpoints of the public PyTorch port to our network and to ONNX.

``python -m model_export convert --from princeton CHECKPOINT --out MODEL.onnx`` reads a
checkpoint of princeton-vl/pytorch_stacked_hourglass (``{"state_dict": ...}`` with keys
prefixed ``model.module.``, or a bare state dict with or without prefixes), infers stacks,
features, joints and hourglass order from the tensor shapes, renames the tensors to our
module names and writes the contract ONNX model through :func:`model_export.export.export_onnx`.

The port gives every residual a ``skip_layer`` 1x1 conv, also where input and output widths
are equal and it is never used; exactly those tensors are dropped. Anything else that is
missing, unexpected or mis-shaped stops the conversion with the tensor's name.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from model_export.checkpoint import CheckpointError, load_checkpoint, sha256_of, state_dict_of, strip_prefixes
from model_export.export import ExportError, export_onnx
from model_export.model import StackedHourglass
from model_export.provenance import command_line
from pose.contract import DEFAULT_INPUT_SIZE

PRINCETON = "princeton"
PRINCETON_SOURCE = "princeton-vl/pytorch_stacked_hourglass"
PRINCETON_PREFIXES = ("model.module.", "module.", "model.")

# Their name -> ours, applied in order to each key (after the wrapper prefixes are gone).
_PRINCETON_RENAMES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^pre\.0\.(conv|bn)\.", r"stem.\1."),
        (r"^pre\.1\.", "stem.res1."),
        (r"^pre\.3\.", "stem.res2."),
        (r"^pre\.4\.", "stem.res3."),
        (r"^hgs\.(\d+)\.0\.", r"stages.\1.hourglass."),
        (r"^features\.(\d+)\.0\.", r"stages.\1.residual."),
        (r"^features\.(\d+)\.1\.", r"stages.\1."),
        (r"^outs\.(\d+)\.conv\.", r"stages.\1.head."),
        (r"^merge_features\.(\d+)\.conv\.conv\.", r"stages.\1.merge_features."),
        (r"^merge_preds\.(\d+)\.conv\.conv\.", r"stages.\1.merge_heatmaps."),
        (r"(?<=\.)up1\.", "up."),
        (r"(?<=\.)low1\.", "down."),
        (r"(?<=\.)low2\.", "inner."),
        (r"(?<=\.)low3\.", "out."),
        (r"(?<=\.)(conv[123])\.conv\.", r"\1."),
        (r"(?<=\.)skip_layer\.conv\.", "skip."),
    )
)
_UNUSED_SKIP = re.compile(r"^(?P<residual>.+)\.skip\.(weight|bias)$")


class ConversionError(ValueError):
    """The checkpoint does not match the network it claims to be."""


@dataclass(frozen=True)
class Converted:
    """Our network with the port's weights, and what was left out."""

    model: StackedHourglass
    dropped: tuple[str, ...]  # the port's names of the unused equal-width skip tensors


def princeton_name(key: str) -> str:
    """Our module name for one of the port's tensor names (prefixes already stripped)."""
    for pattern, replacement in _PRINCETON_RENAMES:
        key = pattern.sub(replacement, key)
    return key


def princeton_config(state: dict[str, torch.Tensor]) -> dict[str, int]:
    """stacks, features, joints and order, read from the tensor shapes."""
    head = state.get("outs.0.conv.weight")
    if head is None or head.dim() != 4:
        raise ConversionError("not a stacked hourglass checkpoint of the port: no 4-D tensor 'outs.0.conv.weight'")
    stacks = len({int(m.group(1)) for k in state if (m := re.match(r"outs\.(\d+)\.", k))})
    depths = [k.count("low2.") for k in state if k.startswith("hgs.0.0.")]
    if not depths:
        raise ConversionError("checkpoint has no hourglass tensors 'hgs.0.0.*'")
    return {
        "stacks": stacks,
        "features": int(head.shape[1]),
        "joints": int(head.shape[0]),
        "order": max(depths),
    }


def convert_princeton_state(state: dict[str, torch.Tensor]) -> Converted:
    """Build our network from a port state dict (any wrapper prefixes), checking every tensor."""
    state = strip_prefixes(state, PRINCETON_PREFIXES)
    model = StackedHourglass(**princeton_config(state))
    expected = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, tensor in state.items():
        name = princeton_name(key)
        if name in expected:
            if tuple(tensor.shape) != tuple(expected[name].shape):
                raise ConversionError(
                    f"tensor '{key}' has shape {tuple(tensor.shape)}, expected {tuple(expected[name].shape)}"
                )
            mapped[name] = tensor
        elif _is_unused_skip(name, tensor, expected):
            dropped.append(key)
        else:
            raise ConversionError(f"unexpected tensor '{key}' (would be '{name}' in our network)")
    for name in expected:
        if name not in mapped:
            raise ConversionError(f"checkpoint has no tensor for '{name}' (our name)")
    model.load_state_dict(mapped, strict=True)
    return Converted(model=model.eval(), dropped=tuple(dropped))


def _is_unused_skip(name: str, tensor: torch.Tensor, expected: dict[str, torch.Tensor]) -> bool:
    """True for the port's skip_layer of a residual whose input and output widths are equal."""
    match = _UNUSED_SKIP.match(name)
    if match is None:
        return False
    residual = match.group("residual")
    bn1, conv3 = expected.get(f"{residual}.bn1.weight"), expected.get(f"{residual}.conv3.weight")
    if bn1 is None or conv3 is None:
        return False
    width_in, width_out = int(bn1.shape[0]), int(conv3.shape[0])
    if width_in != width_out:
        return False
    shape = (width_out, width_in, 1, 1) if name.endswith(".weight") else (width_out,)
    return tuple(tensor.shape) == shape


def load_princeton(path: str | Path) -> Converted:
    """Read a port checkpoint safely and convert it."""
    return convert_princeton_state(state_dict_of(load_checkpoint(path), "state_dict"))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from", dest="source_format", required=True, choices=[PRINCETON], help=f"{PRINCETON}: {PRINCETON_SOURCE}"
    )
    parser.add_argument("checkpoint", type=Path, help="checkpoint file of the source project")
    parser.add_argument("--out", required=True, type=Path, help="ONNX file to write")
    parser.add_argument("--half", action="store_true", help="float16 weights, float32 input/output (GPU serving)")
    parser.add_argument("--input-size", nargs=2, type=int, default=list(DEFAULT_INPUT_SIZE), metavar=("H", "W"))
    parser.add_argument("--dataset", default="unknown", help="what the weights were trained on, for provenance (MPII)")


def run(args: argparse.Namespace) -> int:
    try:
        converted = load_princeton(args.checkpoint)
        model = converted.model
        print(
            f"{PRINCETON_SOURCE} checkpoint: stacks={model.stacks} features={model.features} "
            f"joints={model.joints} order={model.order}; dropped {len(converted.dropped)} unused skip_layer tensors"
        )
        checkpoint_info = {
            "format": PRINCETON_SOURCE,
            "file": args.checkpoint.name,
            "sha256": sha256_of(args.checkpoint),
        }
        provenance = {"dataset": args.dataset, "source_checkpoint": checkpoint_info}
        argv = ["convert", "--from", args.source_format, str(args.checkpoint), "--out", str(args.out)]
        argv += ["--half"] * args.half + ["--input-size", *map(str, args.input_size), "--dataset", args.dataset]
        export_onnx(model, args.out, args.input_size, provenance, half=args.half, command=command_line(argv))
    except (CheckpointError, ConversionError, ExportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
