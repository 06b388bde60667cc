# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Pieces every ``mrisr`` subcommand shares: single file vs manifest inputs, cohort reporting."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pipeline.acceleration import PRECISIONS
from pipeline.cohort import run_cohort
from pipeline.io import check_output_folder, error_message
from pipeline.manifests import read_manifest, row_path, scan_id

__all__ = ["add_input_arguments", "add_precision_argument", "run_single_or_cohort", "fail"]


def add_input_arguments(parser: argparse.ArgumentParser, *, default_column: str) -> None:
    """``INPUT -o OUTPUT`` for one file, or ``--manifest M --output-dir D`` for a cohort."""
    parser.add_argument("input", nargs="?", help="input volume (NIfTI, MHA/NRRD or a DICOM folder)")
    parser.add_argument("-o", "--output", help="output NIfTI path (single-file mode)")
    parser.add_argument("--manifest", help="CSV manifest: run over its rows instead of one file")
    parser.add_argument("--output-dir", help="output folder (manifest mode)")
    parser.add_argument("--split", choices=("train", "val", "test"), help="only the manifest rows of this split")
    parser.add_argument("--data-root", help="folder that the manifest's relative paths resolve against")
    parser.add_argument("--column", default=default_column, help=f"manifest column with the inputs (default: {default_column})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    """``--precision auto|fp32|bf16|fp16`` for the commands that run networks."""
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="numerical precision of the networks (default: the bundle's, auto = bf16/fp16 where measurably "
        "faster on this device, else fp32); recorded in each output's sidecar",
    )


def fail(message: str) -> int:
    """Print ``mrisr: error: <message>`` on stderr; return the exit code 1."""
    print(f"mrisr: error: {message}", file=sys.stderr)
    return 1


def run_single_or_cohort(
    args: argparse.Namespace,
    job: Callable[[str, Path, Any], Any],
    *,
    suffix: str,
    description: str,
    is_complete: Callable[[str, Path], bool] | None = None,
) -> int:
    """Run ``job(input_path, output_path, row)`` on one file or on every manifest row.

    Manifest mode writes ``<output-dir>/<scan_id>_<suffix>.nii.gz`` per row, goes on past a bad
    row, writes ``<output-dir>/failures.csv`` and returns 1 if any row failed. With
    ``is_complete(input_path, output_path)``, rows whose output it accepts are skipped (resume).
    Single-file mode returns 1 with the error on stderr. Exit code 0 means every job succeeded;
    every failure is one line naming the file and the problem.
    """
    if args.manifest is None:
        if args.input is None or args.output is None:
            return fail("give INPUT and -o OUTPUT, or --manifest and --output-dir")
        try:
            job(args.input, Path(args.output), None)
        except Exception as err:  # every failure becomes a message and a non-zero exit
            return fail(error_message(err))
        print(f"wrote {args.output}")
        return 0
    if args.output_dir is None:
        return fail("--manifest needs --output-dir")
    try:
        table = read_manifest(args.manifest, data_root=args.data_root, split=args.split, require=(args.column,))
        check_output_folder(args.output_dir)
    except (OSError, ValueError) as err:
        return fail(error_message(err))
    out_dir = Path(args.output_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = {scan_id(row): row for _, row in table.iterrows()}
    sources = {scan: row_path(row, args.column) for scan, row in rows.items()}
    outputs = {scan: out_dir / f"{scan}_{suffix}.nii.gz" for scan in rows}
    items = [(scan, str(sources[scan]), partial(job, sources[scan], outputs[scan], row)) for scan, row in rows.items()]
    is_done = (lambda s: is_complete(sources[s], outputs[s])) if is_complete else (lambda s: False)
    report = run_cohort(items, is_done=is_done, description=description, progress=not args.no_progress)
    failures = report.write_failures(out_dir / "failures.csv")
    print(f"{description}: {report.summary()}; outputs in {out_dir}")
    if failures:
        print(f"failures listed in {failures}", file=sys.stderr)
    return 0 if report.ok else 1
