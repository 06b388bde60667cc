# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""``mrisr train``: train a bundle's network with its own train.json (plus extra config files).

Long runs go in slices: ``--max-minutes`` ends training at the first epoch end past the budget
(the checkpoint of that epoch written), ``--resume`` continues from ``models/checkpoint.pt`` with
the iteration count, optimiser, scheduler, random generators and best score restored, on this or
another machine. ``--background`` starts the same command detached from the terminal (it survives
the shell that started it), with its output in ``logs/train_<time>.log``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from pipeline.cli.common import fail
from pipeline.inference.methods import BUNDLES_DIR

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a bundle's network on a manifest (its configs/train.json)",
        description="Runs the bundle's train.json (merged with any --config files from its configs/ "
        "folder, e.g. train_cpu.json) through MONAI's ConfigWorkflow. Best weights (by the val split) go "
        "to <bundle>/models/model.pt, a resumable checkpoint (every epoch) to models/checkpoint.pt, the "
        "metrics CSV and TensorBoard logs to logs/.",
    )
    parser.add_argument("bundle", help="bundle name (under bundles/) or bundle folder")
    parser.add_argument("--config", nargs="*", default=[], help="extra config files in configs/ merged after train.json")
    parser.add_argument("--manifest", help="training manifest (default: the bundle's dataset_manifest)")
    parser.add_argument("--data-root", help="folder that the manifest's relative paths resolve against")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue from models/checkpoint.pt")
    start.add_argument(
        "--init-weights", help="start from these weights (e.g. the bundle's models/model.pt) with a fresh optimiser"
    )
    parser.add_argument("--max-epochs", type=int, help="override train#trainer#max_epochs")
    parser.add_argument(
        "--seed", type=int, help="override the config's seed (e.g. a continued run that should draw new patches)"
    )
    parser.add_argument(
        "--max-minutes", type=float, help="stop at the first epoch end after this many minutes (then --resume)"
    )
    parser.add_argument(
        "--background", action="store_true", help="run detached; output to <bundle>/logs/train_<time>.log"
    )
    parser.set_defaults(func=run)


def start_in_background(root: Path) -> int:
    """Re-run this command line without ``--background`` as a detached process; print its PID and log."""
    log_dir = root / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"train_{time.strftime('%Y%m%d-%H%M%S')}.log"
    command = [sys.executable, "-m", "pipeline", *[a for a in sys.argv[1:] if a != "--background"]]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    print(f"training in the background: pid {process.pid}, log {log_path}")
    return 0


def run(args: argparse.Namespace) -> int:
    root = Path(args.bundle) if Path(args.bundle, "configs").is_dir() else BUNDLES_DIR / args.bundle
    if not (root / "configs" / "train.json").is_file():
        return fail(f"{root}: not a bundle with configs/train.json")
    if args.resume and not (root / "models" / "checkpoint.pt").is_file():
        return fail(f"{root / 'models' / 'checkpoint.pt'}: no checkpoint to resume from")
    if args.init_weights and not Path(args.init_weights).is_file():
        return fail(f"{args.init_weights}: no such weights file")
    if args.max_minutes is not None and not args.max_minutes > 0:
        return fail(f"--max-minutes must be > 0, got {args.max_minutes}")
    if args.background:
        return start_in_background(root)

    from pipeline.training import train

    overrides: dict[str, object] = {"resume": args.resume, "max_minutes": args.max_minutes}
    if args.manifest:
        overrides["dataset_manifest"] = str(Path(args.manifest).resolve())
    if args.data_root:
        overrides["dataset_dir"] = str(Path(args.data_root).resolve())
    if args.max_epochs is not None:
        overrides["train#trainer#max_epochs"] = args.max_epochs
    if args.seed is not None:
        overrides["seed"] = args.seed
    initial = Path(args.init_weights).resolve() if args.init_weights else None
    try:
        train(root, ["train.json", *args.config], initial_weights=initial, **overrides)
    except (OSError, ValueError) as err:
        return fail(str(err))
    print(f"best weights (val split): {root / 'models' / 'model.pt'}; checkpoint: {root / 'models' / 'checkpoint.pt'}")
    return 0
