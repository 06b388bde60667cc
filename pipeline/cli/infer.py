# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""``mrisr infer``: super-resolve a volume or a cohort with a bundle or a baseline."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli.common import add_input_arguments, add_precision_argument, fail, run_single_or_cohort
from pipeline.inference import (
    BASELINE_NAMES,
    available_bundles,
    inference_parameters,
    load_method,
    output_is_complete,
    super_resolve_file,
)
from pipeline.io import error_message

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "infer",
        help="super-resolve volumes with a bundle or a baseline",
        description="Super-resolve a volume (INPUT -o OUTPUT) or every row of a manifest (--manifest, "
        "--output-dir; resumes: an output is skipped when it reads back completely and its sidecar "
        "records the same method, bundle version, input and scale; --overwrite redoes it). The scale "
        "comes from --scale, --target-spacing, or the input's degradation sidecar. Writes NIfTI + a "
        "JSON sidecar.",
    )
    add_input_arguments(parser, default_column="lr")
    parser.add_argument(
        "--method",
        required=True,
        help=f"a baseline {BASELINE_NAMES}, a bundle name ({', '.join(available_bundles()) or 'none installed'}) or a bundle folder",
    )
    parser.add_argument("--scale", type=float, nargs=3, metavar=("SX", "SY", "SZ"), help="output voxels per input voxel per axis")
    parser.add_argument("--target-spacing", type=float, nargs=3, metavar=("DX", "DY", "DZ"), help="output spacing in mm")
    parser.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda:0...")
    add_precision_argument(parser)
    parser.add_argument("--overwrite", action="store_true", help="manifest mode: redo outputs that are already complete")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        method = load_method(args.method, device=args.device, precision=args.precision)
    except Exception as err:  # bundle configs fail with any error type; each becomes one line
        return fail(error_message(err))

    def job(source: str, output: Path, _row: object) -> None:
        super_resolve_file(method, source, output, scale=args.scale, target_spacing=args.target_spacing)

    def is_complete(source: str, output: Path) -> bool:
        parameters = inference_parameters(method, source, scale=args.scale, target_spacing=args.target_spacing)
        return output_is_complete(output, parameters)

    return run_single_or_cohort(
        args,
        job,
        suffix=f"sr-{method.name}",
        description=f"infer ({method.name})",
        is_complete=None if args.overwrite else is_complete,
    )
