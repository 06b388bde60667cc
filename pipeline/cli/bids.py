# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""``mrisr bids BIDS_DIR OUTPUT_DIR participant|group``: the BIDS App interface.

``participant`` super-resolves the anatomical scans of a BIDS dataset into a BIDS-derivatives dataset
with the cohort machinery of ``mrisr infer --manifest`` (resume, ``failures.csv``, ``--shard K/N`` and
torchrun); ``group`` tables every output of the derivatives folder (:mod:`pipeline.bids`).
"""

from __future__ import annotations

import argparse
import dataclasses
from functools import partial
from pathlib import Path

from pipeline.bids import (
    DEFAULT_SUFFIXES,
    GROUP_TABLE,
    BidsInput,
    derivative_relpath,
    desc_label,
    describe_method,
    find_inputs,
    group_table,
    has_bids_fields,
    tissue_contrast,
    write_bids_sidecar,
    write_dataset_description,
    write_group_table,
)
from pipeline.cli.common import (
    add_bundle_dir_argument,
    add_methods_argument,
    add_overwrite_argument,
    add_shard_argument,
    fail,
    requested_shard,
    run_cohort_items,
)
from pipeline.cli.infer import InferJob, add_downstream_arguments, add_qc_arguments, add_run_arguments
from pipeline.inference import BASELINE_NAMES, load_method
from pipeline.io import check_output_folder, error_message, same_file

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bids",
        help="super-resolve a BIDS dataset into BIDS derivatives (a BIDS App)",
        description="BIDS App. participant: super-resolve the anat scans of BIDS_DIR (found with pybids) into "
        "OUTPUT_DIR as BIDS derivatives, sub-<label>/[ses-<label>/]anat/<input entities>_res-hi_desc-<method>_"
        "<suffix>.nii.gz, each with a JSON sidecar (Sources, Resolution, method, bundle version, QC), and "
        "write dataset_description.json; resumes like mrisr infer --manifest (complete outputs with the same "
        "settings are skipped; --overwrite redoes them), goes on past a bad scan and lists it in failures.csv. "
        f"group: one table of every output in OUTPUT_DIR ({GROUP_TABLE}: QC flags and tissue volumes).",
    )
    parser.add_argument("bids_dir", metavar="BIDS_DIR", help="the input BIDS dataset")
    parser.add_argument(
        "output_dir", metavar="OUTPUT_DIR", help="the derivatives folder, e.g. BIDS_DIR/derivatives/mrisr"
    )
    parser.add_argument("analysis_level", choices=("participant", "group"), help="participant or group")
    parser.add_argument(
        "--participant-label", nargs="+", metavar="LABEL", help="only these participants (01 or sub-01; default all)"
    )
    parser.add_argument("--session", nargs="+", metavar="LABEL", help="only these sessions (1 or ses-1; default all)")
    parser.add_argument(
        "--suffix",
        nargs="+",
        default=list(DEFAULT_SUFFIXES),
        metavar="SUFFIX",
        help=f"the anat suffixes to super-resolve (default: {' '.join(DEFAULT_SUFFIXES)})",
    )
    add_methods_argument(
        parser,
        several=False,
        more_help=f"; participant level: a baseline {BASELINE_NAMES}, a bundle name or a bundle folder (names the "
        "outputs' desc-<method>, letters and digits only: thick_slice gives desc-thickslice)",
    )
    add_bundle_dir_argument(parser)
    add_run_arguments(parser)
    add_overwrite_argument(parser)
    add_qc_arguments(parser, default="the default")
    add_downstream_arguments(
        parser,
        tables=f"the group level's {GROUP_TABLE} collects them",
        contrast_default=None,
        contrast_help="the scans' contrast for --downstream tissue (default: from the suffix: T1w t1, T2w t2, "
        "FLAIR flair)",
    )
    add_shard_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _super_resolve(job: InferJob, contrast: str | None, item: BidsInput, output: Path) -> None:
    """Write one derivative: the output and its sidecar, the downstream check, then the sidecar's BIDS fields.

    ``contrast``: the ``--tissue-contrast`` of every scan, or ``None`` for each scan's from its suffix.
    """
    if job.downstream == "tissue":
        job = dataclasses.replace(job, tissue_contrast=contrast or tissue_contrast(item))
    job(item.path, output)
    write_bids_sidecar(output, item)


def _is_complete(job: InferJob, item: BidsInput, output: Path) -> bool:
    """``mrisr infer``'s resume test, and the BIDS fields written (the last step of :func:`_super_resolve`)."""
    return job.is_complete(item.path, output) and has_bids_fields(output)


def _participant(args: argparse.Namespace) -> int:
    """Super-resolve the selected scans of ``args.bids_dir`` into ``args.output_dir``."""
    if args.method is None:
        return fail("the participant level needs --method")
    out_dir = Path(args.output_dir).expanduser()
    try:
        if same_file(out_dir, args.bids_dir):
            raise ValueError(f"{out_dir}: the output folder is the input dataset; use e.g. BIDS_DIR/derivatives/mrisr")
        check_output_folder(out_dir)
        requested = requested_shard(args)
        items = find_inputs(
            args.bids_dir,
            participants=args.participant_label,
            sessions=args.session,
            suffixes=args.suffix,
            exclude=out_dir,
        )
        method = load_method(args.method, device=args.device, precision=args.precision, bundles_dir=args.bundle_dir)
        label = desc_label(method.name)
        write_dataset_description(
            out_dir, args.bids_dir, describe_method(method.name, getattr(method, "bundle_info", None))
        )
    except Exception as err:  # bundle configs fail with any error type; each becomes one line
        return fail(error_message(err))
    job = InferJob(
        method,
        zoom=args.zoom,
        target_spacing=args.target_spacing,
        qc=args.qc is not False,
        downstream=args.downstream,
    )
    outputs = {item.scan_id: out_dir / derivative_relpath(item.relpath, method.name) for item in items}
    by_id = {item.scan_id: item for item in items}
    jobs = [
        (scan, str(item.path), partial(_super_resolve, job, args.tissue_contrast, item, outputs[scan]))
        for scan, item in by_id.items()
    ]
    settings = {
        "command": f"bids participant ({method.name})",
        "bids_dir": str(Path(args.bids_dir).expanduser().resolve()),
        "participants": args.participant_label,
        "sessions": args.session,
        "suffixes": args.suffix,
        "outputs": f"desc-{label}",
    }

    def is_done(scan: str) -> bool:
        return not args.overwrite and _is_complete(job, by_id[scan], outputs[scan])

    return run_cohort_items(
        jobs,
        out_dir,
        requested=requested,
        settings=settings,
        description=f"bids participant ({method.name})",
        is_done=is_done,
        progress=not args.no_progress,
    )


def _group(args: argparse.Namespace) -> int:
    """Write the group table of ``args.output_dir``; print how many outputs QC or the tissue check flagged."""
    try:
        table = group_table(args.output_dir, participants=args.participant_label, sessions=args.session)
        path = write_group_table(table, args.output_dir)
    except (OSError, ValueError) as err:
        return fail(error_message(err))
    qc_flagged = int(table["qc_in_range"].eq(False).sum())  # None (no QC) is not flagged
    tissue_flagged = int(table["tissue_flags"].fillna("").ne("").sum()) if "tissue_flags" in table else 0
    print(
        f"bids group: {len(table)} outputs of {table['participant'].nunique()} participants; "
        f"{qc_flagged} out of QC range, {tissue_flagged} with tissue volumes flagged; table in {path}"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    return _participant(args) if args.analysis_level == "participant" else _group(args)
