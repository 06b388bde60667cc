# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""``mrisr synth-contrast``: derived scans in a contrast the bundles never saw, and their manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli.common import add_split_argument, fail, read_cohort_manifest, run_single_or_cohort
from pipeline.io import error_message
from pipeline.manifests import scan_id

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from pipeline.synthesis import DERIVED_CONTRASTS

    parser = subparsers.add_parser(
        "synth-contrast",
        help="derive scans in another contrast (T2-like, FLAIR-like, random, inverted) or with a bias field",
        description="For every manifest row, write <output-dir>/<scan_id>_<contrast>.nii.gz: t2, flair and random "
        "from the 'labels' column (SynthSR-style label contrasts), inverted from 'hr' and 'mask', bias (a random "
        "smooth bias field) from 'hr'. Writes "
        "<output-dir>/manifest.csv listing them with the source rows' masks and labels, ready for mrisr evaluate.",
    )
    parser.add_argument("--manifest", required=True, help="CSV manifest with hr, mask (and labels) columns")
    parser.add_argument("--output-dir", required=True, help="folder for the derived scans and manifest.csv")
    parser.add_argument("--contrast", required=True, choices=DERIVED_CONTRASTS, help="the derived contrast")
    add_split_argument(parser)
    parser.add_argument("--data-root", help="folder that the manifest's relative paths resolve against")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random draws (label contrasts, bias fields; default 0)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run, input=None, output=None, shard=None)


def run(args: argparse.Namespace) -> int:
    from pipeline.synthesis import derived_manifest, source_column, synthesize_contrast_file

    args.column = source_column(args.contrast)

    def job(_source: str, output: Path, row: object) -> None:
        synthesize_contrast_file(row, args.contrast, output, seed=args.seed)  # type: ignore[arg-type]

    status = run_single_or_cohort(args, job, suffix=args.contrast, description=f"synth-contrast ({args.contrast})")
    try:
        table = read_cohort_manifest(args, require=(args.column,))
        out_dir = Path(args.output_dir).expanduser()
        outputs = {scan_id(row): out_dir / f"{scan_id(row)}_{args.contrast}.nii.gz" for _, row in table.iterrows()}
        written = derived_manifest(table, outputs, args.contrast, out_dir / "manifest.csv")
    except (OSError, ValueError) as err:
        return fail(error_message(err))
    print(f"manifest of the derived scans: {written}")
    return status
