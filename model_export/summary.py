"""`python -m model_export summary`: size and cost of a configuration."""

from __future__ import annotations

import argparse

from model_export.model import StackedHourglass, count_macs, count_parameters


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stacks", type=int, default=8)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--joints", type=int, default=16)
    parser.add_argument("--order", type=int, default=4)
    parser.add_argument("--size", type=int, default=256, help="square input side in pixels")


def run(args: argparse.Namespace) -> int:
    model = StackedHourglass(args.stacks, args.features, args.joints, args.order)
    params = count_parameters(model)
    macs = count_macs(model, args.size, args.size)
    print(f"stacks={args.stacks} features={args.features} joints={args.joints} order={args.order}")
    print(f"parameters: {params:,} ({params / 1e6:.2f} M)")
    gmacs = macs / 1e9
    print(f"multiply-accumulates per {args.size}x{args.size} image: {macs:,} ({gmacs:.2f} G, {2 * gmacs:.1f} GFLOP)")
    return 0
