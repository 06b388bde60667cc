# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""``mrisr degrade``: LR synthesis by a named protocol or an explicit degradation model."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from pathlib import Path

from monai.data import MetaTensor

from pipeline.cli.common import DeprecatedAlias, add_input_arguments, add_zoom_argument, fail, run_single_or_cohort
from pipeline.degrade import degrade_file
from pipeline.protocols import PROTOCOLS, get_protocol, protocol_name
from pipeline.transforms.lr_blur import BlurDownsample
from pipeline.transforms.lr_kspace import KSpaceTruncation
from pipeline.transforms.lr_resize import AntialiasedResize
from pipeline.transforms.lr_thick_slice import ThickSlice

__all__ = ["add_parser", "build_transform"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "degrade",
        help="synthesize LR volumes from HR (k-space truncation, blur+downsample, bicubic, thick slices)",
        description="Synthesize LR volumes. Either --protocol NAME (as used by training and evaluation) "
        "or --model with its parameters. Writes NIfTI + a JSON sidecar recording the degradation.",
    )
    add_input_arguments(parser, default_column="hr")
    parser.add_argument(
        "--protocol",
        type=protocol_name,
        help=f"a named protocol ({', '.join(sorted(PROTOCOLS))}) or any thick-<T>mm[-gap<G>mm][-boxcar][-axis<A>]",
    )
    parser.add_argument("--model", choices=("kspace", "blur", "bicubic", "thick-slice"), help="an explicit degradation")
    add_zoom_argument(
        parser,
        old="--factors",
        more_help=" that undoes the degradation (LR spacing / HR spacing), one value or one per degraded axis "
        "(default 2)",
        type=float,
        nargs="+",
        metavar="Z",
        default=[2.0],
    )
    axes = parser.add_mutually_exclusive_group()
    axes.add_argument(
        "--axes", type=int, nargs="+", help="degraded spatial axes (0-2); thick-slice: the one slice axis (default 2)"
    )
    axes.add_argument(
        "--axis",
        dest="axes",
        type=int,
        nargs=1,
        action=DeprecatedAlias,
        new="--axes",
        default=argparse.SUPPRESS,
        help="deprecated alias of --axes for thick-slice (removed in mrisr 0.2.0)",
    )
    parser.add_argument("--grid", choices=("hr", "lr"), default="lr", help="kspace: output matrix (default lr)")
    parser.add_argument("--noise", choices=("gaussian", "rician"), help="blur: add noise")
    parser.add_argument("--noise-std", type=float, default=0.02, help="blur: noise sd as a fraction of the robust max")
    parser.add_argument("--thickness", type=float, help="thick-slice: slice thickness in mm")
    parser.add_argument("--gap", type=float, default=0.0, help="thick-slice: gap between slices in mm")
    parser.add_argument("--profile", choices=("gaussian", "boxcar"), default="gaussian", help="thick-slice profile")
    parser.add_argument("--seed", type=int, default=0, help="seed for random noise")
    parser.set_defaults(func=run)


def build_transform(args: argparse.Namespace) -> Callable[[MetaTensor], MetaTensor]:
    """The LR-synthesis transform the arguments describe (a protocol crops HR to a multiple of its zoom)."""
    if (args.protocol is None) == (args.model is None):
        raise ValueError("give exactly one of --protocol or --model")
    if args.protocol is not None:
        return partial(get_protocol(args.protocol).degrade, seed=args.seed)
    zoom = args.zoom if len(args.zoom) > 1 else args.zoom[0]
    if args.model == "kspace":
        return KSpaceTruncation(zoom, axes=args.axes or (1, 2), output_grid=args.grid)
    if args.model == "blur":
        integer_zoom = [int(z) for z in args.zoom]
        return BlurDownsample(
            integer_zoom if len(integer_zoom) > 1 else integer_zoom[0],
            axes=args.axes or (0, 1),
            noise=args.noise,
            noise_std=args.noise_std,
        )
    if args.model == "bicubic":
        return AntialiasedResize(zoom, axes=args.axes or (0, 1))
    if args.thickness is None:
        raise ValueError("--model thick-slice needs --thickness (mm)")
    if args.axes is not None and len(args.axes) != 1:
        raise ValueError(f"--model thick-slice takes one slice axis (--axes A), got {args.axes}")
    return ThickSlice(args.thickness, axis=(args.axes or [2])[0], gap_mm=args.gap, profile=args.profile)


def run(args: argparse.Namespace) -> int:
    try:
        transform = build_transform(args)
    except ValueError as err:
        return fail(str(err))
    label = args.protocol or args.model

    def job(source: str, output: Path, _row: object) -> None:
        degrade_file(transform, source, output, seed=args.seed, protocol=args.protocol)

    return run_single_or_cohort(args, job, suffix=f"lr-{label}", description=f"degrade ({label})")
