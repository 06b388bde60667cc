# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Pieces every ``mrisr`` subcommand shares: single file vs manifest inputs, cohort reporting."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.acceleration import PRECISIONS
from pipeline.cohort import CohortReport, run_cohort
from pipeline.deprecation import ZOOM_ALIASES_REMOVED
from pipeline.io import check_output_folder, error_message
from pipeline.manifests import read_manifest, row_path, scan_id
from pipeline.sharding import (
    Shard,
    ShardRun,
    ShardsIncomplete,
    cohort_run,
    complete_records,
    merge_lock,
    parse_shard,
    row_positions,
    shard_folder,
    start_shard,
    world_size,
    write_shard_record,
)

__all__ = [
    "ZOOM_HELP",
    "add_bundle_dir_argument",
    "OVERWRITE_HELP",
    "SPLITS",
    "DeprecatedAlias",
    "add_input_arguments",
    "add_methods_argument",
    "add_overwrite_argument",
    "add_split_argument",
    "manifest_split",
    "read_cohort_manifest",
    "add_precision_argument",
    "add_shard_argument",
    "add_zoom_argument",
    "fail",
    "finish_shard",
    "requested_shard",
    "run_cohort_items",
    "run_single_or_cohort",
]


def add_input_arguments(parser: argparse.ArgumentParser, *, default_column: str) -> None:
    """``INPUT -o OUTPUT`` for one file, or ``--manifest M --output-dir D`` for a cohort."""
    parser.add_argument("input", nargs="?", help="input volume (NIfTI, MHA/NRRD or a DICOM folder)")
    parser.add_argument("-o", "--output", help="output NIfTI path (single-file mode)")
    parser.add_argument("--manifest", help="CSV manifest: run over its rows instead of one file")
    parser.add_argument("--output-dir", help="output folder (manifest mode)")
    add_split_argument(parser)
    parser.add_argument("--data-root", help="folder that the manifest's relative paths resolve against")
    parser.add_argument(
        "--column", default=default_column, help=f"manifest column with the inputs (default: {default_column})"
    )
    add_shard_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


SPLITS = ("train", "val", "test", "all")

#: ``--overwrite``, one meaning in every cohort command (infer, bids, evaluate).
OVERWRITE_HELP = (
    "redo outputs that an earlier run with the same settings completed (by default they are reused: an "
    "interrupted run resumes)"
)


def add_overwrite_argument(parser: argparse.ArgumentParser) -> None:
    """``--overwrite`` (:data:`OVERWRITE_HELP`), the same in every cohort command."""
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)


def add_split_argument(parser: argparse.ArgumentParser) -> None:
    """``--split``, the same in every cohort command (resolved by :func:`manifest_split`)."""
    parser.add_argument(
        "--split",
        choices=SPLITS,
        help="manifest rows of this split (default: test when the manifest has a split column, else every row; "
        "all: every row)",
    )


def manifest_split(split: str | None, manifest: str | Path) -> str:
    """The split a cohort command runs on: ``--split`` as given (``None`` when left out), resolved.

    The default, in every cohort command, is ``test`` when the manifest has a ``split`` column (the scans
    that chose nothing; a note on stderr says so) and ``all`` otherwise (a clinical cohort without splits).

    Returns:
        ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
    """
    if split is not None:
        return split
    try:
        columns = pd.read_csv(manifest, nrows=0).columns
    except (OSError, ValueError):
        return "all"  # read_manifest reports an unreadable manifest with its own message
    if "split" not in columns:
        return "all"
    print("mrisr: note: the test rows of the manifest (the default; --split all for every row)", file=sys.stderr)
    return "test"


def read_cohort_manifest(args: argparse.Namespace, require: tuple[str, ...]) -> pd.DataFrame:
    """The rows of ``args.manifest`` that a cohort command runs on; ``args.split`` is resolved in place."""
    args.split = manifest_split(args.split, args.manifest)
    split = None if args.split == "all" else args.split
    return read_manifest(args.manifest, data_root=args.data_root, split=split, require=require)


def add_methods_argument(
    parser: argparse.ArgumentParser, *, several: bool, required: bool = False, more_help: str = ""
) -> None:
    """``--methods`` in every command (``--method`` is the same option).

    Args:
        several: the command compares several methods (``args.methods``, a list: evaluate); otherwise
            it runs exactly one (``args.method``, a string: infer, bids).
        required: the option must be given.
        more_help: appended to the help.
    """
    parser.add_argument(
        "--methods",
        "--method",
        dest="methods" if several else "method",
        nargs="+" if several else None,
        metavar="METHOD",
        required=required,
        help=("baselines and/or bundle names/folders" if several else "one baseline or bundle name/folder") + more_help,
    )


def add_shard_argument(parser: argparse.ArgumentParser) -> None:
    """``--shard K/N``: run one part of a manifest (see :mod:`pipeline.sharding`)."""
    parser.add_argument(
        "--shard",
        metavar="K/N",
        help="cohort mode (a manifest, a BIDS dataset): run only shard K of N, the rows (scans, in path order for "
        "BIDS) i with i mod N = K (K counts from 0), e.g. "
        "--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT with --array=0-(N-1); the last shard to finish "
        "merges the outputs. Under torchrun each rank takes its own shard without this option",
    )


def requested_shard(args: argparse.Namespace) -> Shard | None:
    """The ``--shard`` of the command line, checked (``ValueError`` with one line when malformed)."""
    return parse_shard(args.shard) if args.shard is not None else None


def add_bundle_dir_argument(parser: argparse.ArgumentParser) -> None:
    """``--bundle-dir D``: a folder of bundles searched for names before ``$MRISR_BUNDLE_DIR`` and the shipped ones."""
    parser.add_argument(
        "--bundle-dir",
        metavar="D",
        help="folder of bundles (D/<name>/configs/...) searched first for bundle names; then $MRISR_BUNDLE_DIR, "
        "the bundles installed with the package, the source checkout's bundles/ (see mrisr bundles)",
    )


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    """``--precision auto|fp32|bf16|fp16`` for the commands that run networks."""
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="numerical precision of the networks (default: the bundle's, auto = bf16/fp16 where measurably "
        "faster on this device, else fp32); recorded in each output's sidecar",
    )


#: What ``--zoom`` means, the first words of its help in every command.
ZOOM_HELP = "zoom: output voxels per input voxel per axis (MONAI's Zoom)"


class DeprecatedAlias(argparse.Action):
    """An option renamed to ``new``: stores into the new option's ``dest`` and prints one line on stderr."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(f"mrisr: {option_string} is deprecated, use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_zoom_argument(parser: argparse.ArgumentParser, *, old: str, more_help: str = "", **kwargs: Any) -> None:
    """``--zoom`` (``args.zoom``) and its deprecated alias ``old`` (``--scale``, ``--factors``), one or the other.

    The alias takes the same values until mrisr :data:`~pipeline.deprecation.ZOOM_ALIASES_REMOVED` and prints
    ``mrisr: <old> is deprecated, use --zoom`` on stderr. ``kwargs`` (``type``, ``nargs``, ``metavar``,
    ``default``) go to ``--zoom``; all but ``default`` to the alias.
    """
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--zoom", dest="zoom", help=ZOOM_HELP + more_help, **kwargs)
    alias = {key: value for key, value in kwargs.items() if key != "default"}
    group.add_argument(
        old,
        dest="zoom",
        action=DeprecatedAlias,
        new="--zoom",
        default=argparse.SUPPRESS,
        help=f"deprecated alias of --zoom (removed in mrisr {ZOOM_ALIASES_REMOVED})",
        **alias,
    )


def fail(message: str) -> int:
    """Print ``mrisr: error: <message>`` on stderr; return the exit code 1."""
    print(f"mrisr: error: {message}", file=sys.stderr)
    return 1


def finish_shard(run: ShardRun, output_dir: Path, status: int, merge: Callable[[], None]) -> int:
    """After this shard's outputs are written: merge every shard's, where this process should.

    Under torchrun every rank waits for the others and rank 0 merges; rank 0 then returns 1 when a
    row of any rank failed or the merge failed, the other ranks 0 (so torchrun, which stops the
    remaining ranks when one fails, never stops them during the merge). A ``--shard`` job merges
    when it finds every shard complete (the last one to finish does, under
    :func:`~pipeline.sharding.merge_lock`) and returns 1 when a row of its own shard failed or its
    merge failed.

    Args:
        status: this shard's exit status (0: all its rows succeeded).
        merge: writes the merged outputs and prints where; raises
            :class:`~pipeline.sharding.ShardsIncomplete` when a shard is not complete.
    """
    status = run.max_over_ranks(status)
    merge_status = 0
    if run.lead:
        try:
            with merge_lock(output_dir):
                merge()
        except ShardsIncomplete as err:
            print(f"shard {run.shard}: {err}")
        except (OSError, ValueError, RuntimeError) as err:
            merge_status = fail(f"{output_dir}: merging the shards failed: {error_message(err)}")
    status = max(status, run.from_lead(merge_status))  # every rank waits here until rank 0 has merged
    return status if run.lead else 0


def _cohort_settings(args: argparse.Namespace, description: str, suffix: str) -> dict[str, str | None]:
    """What a shard of a cohort command depends on: shards merge only with shards of equal settings."""
    return {
        "command": description,
        "manifest": str(Path(args.manifest).expanduser().resolve()),
        "split": args.split,
        "column": args.column,
        "data_root": None if args.data_root is None else str(Path(args.data_root).expanduser().resolve()),
        "outputs": suffix,
    }


def _merge_failures(output_dir: Path, shard: Shard, description: str) -> None:
    """``failures.csv`` of the whole run from the shards' (rows in manifest order), or none when none failed."""
    records = complete_records(output_dir, shard)
    positions = row_positions(records)
    failures: list[dict[str, str]] = []
    for k in range(shard.count):
        path = shard_folder(output_dir, Shard(k, shard.count)) / "failures.csv"
        if path.is_file():
            failures += pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records")
    failures.sort(key=lambda failure: positions[failure["scan_id"]])
    written = CohortReport(failures=failures).write_failures(output_dir / "failures.csv")
    counts = f"merged {shard.count} shards, {len(positions)} rows, {len(failures)} failed"
    print(f"{description}: {counts}; outputs in {output_dir}")
    if written:
        print(f"failures listed in {written}", file=sys.stderr)


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
    Under torchrun or with ``--shard K/N`` only this shard's rows run; the shard's failures go to
    ``<output-dir>/shards/<k>-of-<n>/failures.csv`` and are merged into ``failures.csv`` (see
    :func:`finish_shard`). Single-file mode returns 1 with the error on stderr. Exit code 0 means
    every job succeeded; every failure is one line naming the file and the problem.
    """
    if args.manifest is None:
        if args.input is None or args.output is None:
            return fail("give INPUT and -o OUTPUT, or --manifest and --output-dir")
        if args.shard is not None or world_size() > 1:
            return fail("--shard and torchrun split a manifest's rows: give --manifest and --output-dir")
        try:
            job(args.input, Path(args.output), None)
        except Exception as err:  # every failure becomes a message and a non-zero exit
            return fail(error_message(err))
        print(f"wrote {args.output}")
        return 0
    if args.output_dir is None:
        return fail("--manifest needs --output-dir")
    try:
        requested = requested_shard(args)
        table = read_cohort_manifest(args, require=(args.column,))
        check_output_folder(args.output_dir)
    except (OSError, ValueError) as err:
        return fail(error_message(err))
    out_dir = Path(args.output_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = {scan_id(row): row for _, row in table.iterrows()}
    sources = {scan: row_path(row, args.column) for scan, row in rows.items()}
    outputs = {scan: out_dir / f"{scan}_{suffix}.nii.gz" for scan in rows}
    is_done = (lambda s: is_complete(sources[s], outputs[s])) if is_complete else (lambda s: False)
    items = [(scan, str(sources[scan]), partial(job, sources[scan], outputs[scan], rows[scan])) for scan in rows]
    return run_cohort_items(
        items,
        out_dir,
        requested=requested,
        settings=_cohort_settings(args, description, suffix),
        description=description,
        is_done=is_done,
        progress=not args.no_progress,
    )


def run_cohort_items(
    items: Sequence[tuple[str, str, Callable[[], Any]]],
    out_dir: Path,
    *,
    requested: Shard | None,
    settings: Mapping[str, Any],
    description: str,
    is_done: Callable[[str], bool],
    progress: bool = True,
) -> int:
    """Run a cohort's ``(scan_id, input, job)`` items (in cohort order) in this process's shard, report failures.

    Without a shard (no ``--shard``, no torchrun) every item runs and the failures go to
    ``<out_dir>/failures.csv``; with one, only the shard's items (positions ``k, k + n, ...``) run, its
    failures go to ``<out_dir>/shards/<k>-of-<n>/failures.csv`` and are merged into ``failures.csv`` once
    every shard is complete (:func:`finish_shard`). Items whose ``is_done(scan_id)`` is true are skipped.

    Args:
        settings: what the outputs depend on (JSON types): shards merge only with shards of equal settings.

    Returns:
        The exit code: 0 when every item of this run (shard) succeeded or was skipped, else 1.
    """
    with cohort_run(requested) as run:
        positions = range(len(items)) if run.shard is None else run.shard.positions(len(items))
        mine = [items[p] for p in positions]
        if run.shard is None:
            report = run_cohort(mine, is_done=is_done, description=description, progress=progress)
            failures = report.write_failures(out_dir / "failures.csv")
            print(f"{description}: {report.summary()}; outputs in {out_dir}")
            if failures:
                print(f"failures listed in {failures}", file=sys.stderr)
            return 0 if report.ok else 1
        folder = start_shard(out_dir, run.shard)
        label = f"{description} [{run.shard}]"
        report = run_cohort(mine, is_done=is_done, description=label, progress=progress)
        report.write_failures(folder / "failures.csv")
        shard_rows = [(p, items[p][0]) for p in positions]
        write_shard_record(out_dir, run.shard, settings, shard_rows, failures=len(report.failures))
        print(f"{description}, shard {run.shard}: {report.summary()}; outputs in {out_dir}")
        merge = partial(_merge_failures, out_dir, run.shard, description)
        return finish_shard(run, out_dir, 0 if report.ok else 1, merge)
