# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""``mrisr demo``: the embedded end-to-end demo on the MNI152 template (see :mod:`pipeline.demo`)."""

from __future__ import annotations

import argparse

from pipeline.cli.common import DeprecatedAlias, add_precision_argument, fail
from pipeline.demo import DEMO_SLAB_SLICES, MIN_SLAB_SLICES

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="run preprocessing, LR synthesis and SR with every bundle on the MNI152 template"
    )
    parser.add_argument("--output-dir", default="demo_output", help="output folder (default demo_output)")
    parser.add_argument(
        "--output",
        dest="output_dir",
        action=DeprecatedAlias,
        new="--output-dir",
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )  # the old name, removed in 0.2
    parser.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda:0...")
    add_precision_argument(parser)
    parser.add_argument(
        "--slab",
        type=int,
        default=DEMO_SLAB_SLICES,
        help=f"axial slices of the template the SR step runs on (default {DEMO_SLAB_SLICES}: a few minutes on 2 CPU "
        f"cores; 0 = the whole template; else at least {MIN_SLAB_SLICES})",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    if args.slab < 0 or 0 < args.slab < MIN_SLAB_SLICES:
        return fail(f"--slab needs 0 (the whole template) or at least {MIN_SLAB_SLICES} slices, got {args.slab}")
    run_demo(args.output_dir, device=args.device, precision=args.precision, slab_slices=args.slab)
    return 0
