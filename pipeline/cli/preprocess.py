# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""``mrisr preprocess``: brain mask, N4 bias-field correction and intensity normalisation."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli.common import add_input_arguments, run_single_or_cohort
from pipeline.manifests import row_path

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "preprocess",
        help="brain mask, N4 bias correction and intensity normalisation",
        description="Writes the preprocessed volume, its brain mask (<output>_mask.nii.gz, unless given) "
        "and a JSON sidecar with the normalisation parameters.",
    )
    add_input_arguments(parser, default_column="hr")
    parser.add_argument("--mask", help="brain mask to use (single-file mode; manifests use their 'mask' column)")
    parser.add_argument("--no-n4", action="store_true", help="skip N4 bias-field correction")
    parser.add_argument("--no-normalize", action="store_true", help="skip intensity normalisation")
    parser.add_argument("--shrink-factor", type=int, default=4, help="N4 shrink factor (default 4)")
    parser.add_argument(
        "--n4-iterations", type=int, nargs="+", default=[50, 50, 50, 50], help="N4 iterations per level"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.preprocess import preprocess_file  # imports ITK: only when this command runs

    def job(source: str, output: Path, row: object) -> None:
        mask = args.mask if row is None else row_path(row, "mask")
        preprocess_file(
            source,
            output,
            mask_path=mask,
            n4=not args.no_n4,
            normalize=not args.no_normalize,
            shrink_factor=args.shrink_factor,
            n4_iterations=tuple(args.n4_iterations),
        )

    return run_single_or_cohort(args, job, suffix="preproc", description="preprocess")
