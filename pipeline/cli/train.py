# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""``mrisr train``: train a bundle's network with its own train.json (plus extra config files)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli.common import fail
from pipeline.inference.methods import BUNDLES_DIR

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a bundle's network on a manifest (its configs/train.json)",
        description="Runs the bundle's train.json (merged with any --config files from its configs/ "
        "folder, e.g. train_cpu.json) through MONAI's ConfigWorkflow. Best weights go to "
        "<bundle>/models/model.pt, a resumable checkpoint to models/checkpoint.pt, logs to logs/.",
    )
    parser.add_argument("bundle", help="bundle name (under bundles/) or bundle folder")
    parser.add_argument("--config", nargs="*", default=[], help="extra config files in configs/ merged after train.json")
    parser.add_argument("--manifest", help="training manifest (default: the bundle's dataset_manifest)")
    parser.add_argument("--data-root", help="folder that the manifest's relative paths resolve against")
    parser.add_argument("--resume", action="store_true", help="continue from models/checkpoint.pt")
    parser.add_argument("--max-epochs", type=int, help="override train#trainer#max_epochs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.training import train

    root = Path(args.bundle) if Path(args.bundle, "configs").is_dir() else BUNDLES_DIR / args.bundle
    if not (root / "configs" / "train.json").is_file():
        return fail(f"{root}: not a bundle with configs/train.json")
    overrides: dict[str, object] = {"resume": args.resume}
    if args.manifest:
        overrides["dataset_manifest"] = str(Path(args.manifest).resolve())
    if args.data_root:
        overrides["dataset_dir"] = str(Path(args.data_root).resolve())
    if args.max_epochs is not None:
        overrides["train#trainer#max_epochs"] = args.max_epochs
    try:
        train(root, ["train.json", *args.config], **overrides)
    except (OSError, ValueError) as err:
        return fail(str(err))
    print(f"trained weights: {root / 'models' / 'model.pt'}")
    return 0
