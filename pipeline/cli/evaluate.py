# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""``mrisr evaluate``: manifest + protocol + methods → metrics tables, figures and a report."""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

from pipeline.cli.common import (
    add_bundle_dir_argument,
    add_methods_argument,
    add_overwrite_argument,
    add_precision_argument,
    add_shard_argument,
    add_split_argument,
    fail,
    finish_shard,
    manifest_split,
    requested_shard,
)
from pipeline.evaluation.downstream import DOWNSTREAM_CHECKS
from pipeline.evaluation.tissue import TISSUE_ORDER
from pipeline.inference.bundle_dirs import check_bundle_dir
from pipeline.protocols import PROTOCOLS, Protocol, get_protocol, protocol_name
from pipeline.sharding import Shard, cohort_run
from pipeline.training.adaptation import resolve_bundle_name

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="compare SR methods on a cohort under a degradation protocol",
        description="For each manifest row: make LR from HR with the protocol, super-resolve with each "
        "method, and score PSNR/SSIM/NRMSE inside the brain mask (whole volume and slice-wise in the "
        "most degraded plane). Writes per_scan_metrics.csv, summary.csv/.md (mean ± sd, paired "
        "Wilcoxon vs cubic), boxplot and panel PNGs, report.md and failures.csv. Under torchrun or with "
        "--shard K/N each process evaluates its shard of the rows into <output-dir>/shards/<k>-of-<n>/ and "
        "the merged outputs equal a single-process run's.",
    )
    parser.add_argument("--manifest", required=True, help="CSV manifest with hr (and mask) columns")
    parser.add_argument(
        "--protocol",
        required=True,
        type=protocol_name,
        help=f"degradation protocol: {', '.join(sorted(PROTOCOLS))}, or any thick-<T>mm[-gap<G>mm][-boxcar][-axis<A>]",
    )
    add_methods_argument(parser, several=True, more_help=" (default: the protocol's baselines)")
    add_bundle_dir_argument(parser)
    parser.add_argument("--output-dir", required=True, help="folder for tables, figures and the report")
    add_split_argument(parser)
    parser.add_argument("--data-root", help="folder that the manifest's relative paths resolve against")
    parser.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda:0...")
    add_precision_argument(parser)
    parser.add_argument("--save-volumes", action="store_true", help="also write every SR volume as NIfTI")
    parser.add_argument(
        "--crop-to-mask",
        action="store_true",
        help="crop HR and mask to the brain's bounding box (+8 voxels) before degrading: same metrics in the "
        "mask for skull-stripped scans, networks run on fewer voxels",
    )
    add_shard_argument(parser)
    add_overwrite_argument(parser)
    parser.add_argument(
        "--qc",
        action="store_true",
        help="also score each network output's trust check: data consistency, mean uncertainty and the Spearman "
        "correlation of the uncertainty with |SR - HR| in the brain mask",
    )
    parser.add_argument(
        "--downstream",
        nargs="+",
        choices=DOWNSTREAM_CHECKS,
        default=[],
        help="downstream checks: 'tissue' segments HR and every output into CSF/GM/WM (ANTs Atropos) and scores "
        "Dice and volume error against HR (and against a manifest 'tissue_labels' column); 'labels' scores "
        "intensity and volume agreement in named structures of the manifest's 'labels' map",
    )
    parser.add_argument(
        "--tissue-contrast",
        choices=sorted(TISSUE_ORDER),
        default="t1",
        help="the scans' contrast for --downstream tissue: which tissue is darkest (default t1)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _merge(output_dir: Path, shard: Shard, protocol: Protocol) -> None:
    """Write the run's outputs from every shard's and say where."""
    from pipeline.evaluation import merge_evaluation_shards

    merged = merge_evaluation_shards(output_dir, shard, protocol)
    scans = merged.per_scan["scan_id"].nunique()
    print(f"merged {shard.count} shards, {scans} scan(s) evaluated; report: {output_dir}/report.md")
    if "failures" in merged.files:
        print(f"failures listed in {merged.files['failures']}")


def run(args: argparse.Namespace) -> int:
    from pipeline.evaluation import evaluate_cohort

    protocol = get_protocol(args.protocol)
    methods = args.methods or list(protocol.baselines)
    if "cubic" not in methods:
        methods = ["cubic", *methods]  # the reference every paired test is against
    try:
        requested = requested_shard(args)
        check_bundle_dir(args.bundle_dir)
    except (ValueError, OSError) as err:
        return fail(str(err))
    methods = [resolve_bundle_name(m, args.bundle_dir) for m in methods]
    split = manifest_split(args.split, args.manifest)
    with cohort_run(requested) as sharding:
        try:
            result = evaluate_cohort(
                args.manifest,
                protocol.name,
                methods,
                args.output_dir,
                split=None if split == "all" else split,
                data_root=args.data_root,
                device=args.device,
                precision=args.precision,
                save_volumes=args.save_volumes,
                crop_to_mask=args.crop_to_mask,
                progress=not args.no_progress,
                shard=sharding.shard,
                resume=not args.overwrite,
                qc=args.qc,
                downstream=args.downstream,
                tissue_contrast=args.tissue_contrast,
            )
        except (OSError, ValueError) as err:
            return fail(str(err))
        if sharding.shard is None:
            if result.reused:
                print(f"{args.output_dir}: complete from an earlier run with the same settings; --overwrite redoes it")
            print(f"report: {args.output_dir}/report.md")
            return 0 if result.failures.empty else 1
        scans, failed = result.per_scan["scan_id"].nunique(), len(result.failures)
        print(f"evaluate, shard {sharding.shard}: {scans} scan(s), {failed} failure(s); in {result.output_dir}")
        out = Path(args.output_dir)
        return finish_shard(sharding, out, 0 if result.ok else 1, partial(_merge, out, sharding.shard, protocol))
