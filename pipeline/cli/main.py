# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""The ``mrisr`` command (also ``python -m pipeline``).

Exit codes: 0 success; 1 a file or a manifest row failed (the error names it; cohort runs list
failures in ``failures.csv`` and still finish the other rows); 2 bad command-line usage.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pipeline
from pipeline.acceleration import configure_process
from pipeline.cli import bids, bundles, degrade, demo, evaluate, infer, preprocess, report, synth_contrast, train
from pipeline.cli.common import fail
from pipeline.io import error_message

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mrisr", description="Brain MRI super-resolution pipeline (MONAI).")
    parser.add_argument("--version", action="version", version=f"mrisr {pipeline.__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (preprocess, degrade, synth_contrast, infer, evaluate, train, bundles, demo):
        module.add_parser(subparsers)
    bids.add_parser(subparsers)
    report.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``mrisr`` command; any error it lets through still ends as one line and exit code 1."""
    args = build_parser().parse_args(argv)
    configure_process()  # the command is an entry point: it tunes the process (pipeline.acceleration.runtime)
    try:
        return int(args.func(args))
    except Exception as err:  # an error no command expected still ends in one line, never a traceback
        return fail(f"{type(err).__name__}: {error_message(err)}")
