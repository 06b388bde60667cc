# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""``mrisr bundles``: list the installed bundles; ``export RUN --to BUNDLE``: ship a run's weights;
``average RUN --epochs A B --to NEW_RUN``: average a run's epochs' weights into a new run folder;
``interpolate START END --weight A --to NEW_RUN``: the weights (1 - A) x START + A x END in a new run folder;
``rebase FINETUNED --from ORIGINAL --onto BASE --to NEW_RUN``: BASE + (FINETUNED - ORIGINAL) in a new run folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.cli.common import add_bundle_dir_argument, fail
from pipeline.inference.bundle_catalog import SHORT_SHA256, installed_bundles
from pipeline.inference.bundle_dirs import bundle_search_path, check_bundle_dir
from pipeline.io import error_message

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bundles",
        help="list the installed bundles ('bundles export': ship a training run's weights; 'bundles average': "
        "average a run's epochs; 'bundles interpolate': mix two folders' weights; 'bundles rebase': replay a "
        "fine-tuning onto newer weights)",
        description="Lists every bundle a --method name resolves to: name, version, the protocol it was trained "
        "for, its PSNR gain over cubic B-spline on the test split (metadata eval_metrics), the SHA-256 of "
        "models/model.pt (first 12 hex digits; '!' when it differs from the model_sha256 its metadata records) "
        "and where it was found (--bundle-dir, MRISR_BUNDLE_DIR, package, checkout).",
    )
    add_bundle_dir_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the list as JSON (full checksums and paths)")
    parser.set_defaults(func=list_bundles)
    actions = parser.add_subparsers(dest="action")
    export = actions.add_parser(
        "export",
        help="replace a bundle's weights with a training run's",
        description="Copies RUN/models/model.pt (the run's weights selected on the val split) over "
        "BUNDLE/models/model.pt atomically, after checking that they load into the bundle's network, and "
        "updates BUNDLE/configs/metadata.json: version patch + 1, a changelog line, model_sha256 and "
        "training_record (run folder, dates). Re-run 'mrisr evaluate' to update its eval_metrics.",
    )
    export.add_argument("run", help="run folder of 'mrisr train' (e.g. runs/srcnn/20261203T192500Z)")
    export.add_argument("--to", required=True, dest="bundle", help="bundle folder to update, e.g. bundles/srcnn")
    export.add_argument("--message", help="the changelog line (default: names the run folder and the date)")
    export.set_defaults(func=export_run)
    average = actions.add_parser(
        "average",
        help="average a training run's epochs' weights into a new run folder",
        description="Writes the uniform average of RUN/models/epochs/epoch_FIRST..LAST.pt (kept when the run's "
        "config sets keep_epoch_weights) as OUT/models/model.pt, with a copy of RUN's configs and a run.json "
        "naming RUN and the epochs. Score it with 'mrisr evaluate --split val --methods OUT', ship it with "
        "'mrisr bundles export OUT --to BUNDLE'. OUT must not exist.",
    )
    average.add_argument("run", help="run folder of 'mrisr train' with models/epochs/")
    average.add_argument("--epochs", nargs=2, type=int, required=True, metavar=("FIRST", "LAST"))
    average.add_argument("--to", required=True, dest="out", help="the new run folder")
    average.set_defaults(func=average_epochs)
    interpolate = actions.add_parser(
        "interpolate",
        help="mix a bundle's weights with a fine-tuning of them, (1 - A) x START + A x END, into a new run folder",
        description="Writes (1 - A) x START/models/model.pt + A x END/models/model.pt as OUT/models/model.pt, "
        "with a copy of END's configs and a run.json naming both folders and A (weight-space ensembling, as "
        "WiSE-FT does; meaningful when END was fine-tuned from START, e.g. a domain-randomised run from the "
        "shipped bundle). Score it with 'mrisr evaluate --split val --methods OUT'. OUT must not exist.",
    )
    interpolate.add_argument("start", help="run or bundle folder (configs/ and models/model.pt), e.g. bundles/x")
    interpolate.add_argument("end", help="run or bundle folder of the same network, fine-tuned from START")
    interpolate.add_argument("--weight", type=float, required=True, help="A, the share of END, in [0, 1]")
    interpolate.add_argument("--to", required=True, dest="out", help="the new run folder")
    interpolate.set_defaults(func=interpolate_folders)
    rebase = actions.add_parser(
        "rebase",
        help="replay a fine-tuning onto newer weights of the same network, BASE + S x (FINETUNED - ORIGINAL)",
        description="Writes BASE + S x (FINETUNED - ORIGINAL) (their models/model.pt, or weights files) as "
        "OUT/models/model.pt, with a copy of FINETUNED's configs and a run.json naming the three and S (task "
        "arithmetic: e.g. mdcsrn_gan, fine-tuned from mdcsrn 0.4.0, rebased onto mdcsrn 0.5.0; take an older "
        "bundle version's weights with 'git show REV:bundles/NAME/models/model.pt > FILE'). Score it with "
        "'mrisr evaluate --split val --methods OUT'. OUT must not exist.",
    )
    rebase.add_argument("finetuned", help="run or bundle folder fine-tuned from ORIGINAL, e.g. bundles/mdcsrn_gan")
    rebase.add_argument(
        "--from", required=True, dest="original", help="the weights FINETUNED started from (folder or .pt file)"
    )
    rebase.add_argument("--onto", required=True, dest="base", help="the newer weights (folder or .pt file)")
    rebase.add_argument("--scale", type=float, default=1.0, help="S, the share of the fine-tuning replayed (1)")
    rebase.add_argument("--to", required=True, dest="out", help="the new run folder")
    rebase.set_defaults(func=rebase_folders)


def _gain(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def _checksum(summary) -> str:
    if summary.model_sha256 is None:
        return "no weights"
    return summary.model_sha256[:SHORT_SHA256] + ("!" if summary.checksum_matches is False else "")


def list_bundles(args: argparse.Namespace) -> int:
    try:
        check_bundle_dir(args.bundle_dir)
        summaries = installed_bundles(args.bundle_dir)
    except (OSError, ValueError) as err:
        return fail(error_message(err))
    if args.json:
        print(json.dumps([summary.as_dict() for summary in summaries], indent=2))
        return 0
    from tabulate import tabulate

    rows = [
        (s.name, s.version, s.protocol, _gain(s.test_psnr_gain_db), _checksum(s), f"{s.origin}: {Path(s.path).parent}")
        for s in summaries
    ]
    headers = ("name", "version", "protocol", "test dB vs cubic", "sha256", "found in")
    print(tabulate(rows, headers=headers, disable_numparse=True) if rows else "no bundles found")
    searched = ", ".join(
        f"{e.path}{'' if e.path.is_dir() else ' (missing)'}" for e in bundle_search_path(args.bundle_dir)
    )
    print(f"searched: {searched}")
    if any(s.checksum_matches is False for s in summaries):
        print("!: models/model.pt differs from the model_sha256 in its metadata", file=sys.stderr)
    return 0


def export_run(args: argparse.Namespace) -> int:
    from pipeline.training.export import export_run as export

    try:
        result = export(args.run, args.bundle, message=args.message)
    except (OSError, ValueError) as err:
        return fail(error_message(err))
    print(
        f"{result.bundle}: version {result.old_version} -> {result.new_version}, models/model.pt sha256 "
        f"{result.model_sha256[:SHORT_SHA256]} from {args.run}; its eval_metrics still describe the previous "
        "weights: re-run mrisr evaluate and update them"
    )
    return 0


def average_epochs(args: argparse.Namespace) -> int:
    from pipeline.training.averaging import average_run

    first, last = args.epochs
    try:
        out = average_run(args.run, first, last, args.out)
    except (OSError, ValueError) as err:
        return fail(error_message(err))
    print(f"{out}/models/model.pt: the average of epochs {first}-{last} of {args.run}")
    return 0


def interpolate_folders(args: argparse.Namespace) -> int:
    from pipeline.training.averaging import interpolate_weights

    try:
        out = interpolate_weights(args.start, args.end, args.weight, args.out)
    except (OSError, ValueError) as err:
        return fail(error_message(err))
    print(f"{out}/models/model.pt: {1 - args.weight:g} x {args.start} + {args.weight:g} x {args.end}")
    return 0


def rebase_folders(args: argparse.Namespace) -> int:
    from pipeline.training.averaging import rebase_weights

    try:
        out = rebase_weights(args.finetuned, args.original, args.base, args.out, scale=args.scale)
    except (OSError, ValueError) as err:
        return fail(error_message(err))
    print(f"{out}/models/model.pt: {args.base} + {args.scale:g} x ({args.finetuned} - {args.original})")
    return 0
