# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""``mrisr train``: train a bundle's network with its own train.json (plus extra config files) in a run folder.

Training never writes into a shipped bundle (one found by name, or a folder of the bundle search
path): it writes to a run folder (:mod:`pipeline.training.run_folders`), by default a new
``runs/<bundle>/<UTC time>/`` holding a copy of the bundle's configs, then its checkpoints, logs and
curve. A folder given as BUNDLE that is not a shipped bundle (an earlier run folder) is trained in
place. ``mrisr bundles export RUN --to bundles/<name>`` then replaces a bundle's weights.

Long runs go in slices: ``--max-minutes`` ends training at the first epoch end past the budget
(the checkpoint of that epoch written), ``--resume`` continues from the run's ``models/checkpoint.pt``
(by default the latest run of the bundle under ``runs/``) with the iteration count, optimiser,
scheduler, random generators and best score restored, on this or another machine. ``--background``
starts the same command detached from the terminal (it survives the shell that started it), with its
output in the run folder's ``logs/train_<time>.log``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from pipeline.cli.common import add_bundle_dir_argument, fail
from pipeline.inference.bundle_dirs import bundle_search_path, check_bundle_dir, find_bundle, is_in_search_path
from pipeline.io import error_message
from pipeline.training.run_folders import (
    RUNS_DIR,
    adopt_config_layers,
    display_path,
    latest_run,
    new_run_folder,
    prepare_run_folder,
    record_session,
)

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a bundle's network on a manifest (its configs/train.json) in a run folder",
        description="Runs the bundle's train.json (merged with any --config files from its configs/ "
        "folder, e.g. train_cpu.json) through MONAI's ConfigWorkflow in a run folder (default: a new "
        "runs/<bundle>/<UTC time>/ with a copy of the bundle's configs; shipped bundles are never written). "
        "Best weights (by the val split) go to <run>/models/model.pt, a resumable checkpoint (every epoch) to "
        "models/checkpoint.pt, the metrics CSV, TensorBoard logs and the validation curve to logs/. "
        "'mrisr bundles export RUN --to bundles/<name>' replaces the bundle's weights with the run's.",
    )
    parser.add_argument(
        "bundle",
        help="bundle name (found like --method names) or bundle folder; a folder that is not a shipped bundle "
        "(an earlier run folder) is trained in place",
    )
    parser.add_argument(
        "--run-dir",
        help="the run folder (default: a new runs/<bundle>/<UTC time>/; with --resume the run under "
        "runs/<bundle>/ whose checkpoint was written last)",
    )
    add_bundle_dir_argument(parser)
    parser.add_argument(
        "--config",
        nargs="*",
        default=[],
        help="extra config files merged after train.json, in order: names in the bundle's configs/ (e.g. "
        "train_cpu.json), or paths to JSON files of your own (e.g. ./my_layer.json), which are copied into the "
        "run folder's configs/ so the run keeps them",
    )
    parser.add_argument("--manifest", help="training manifest (default: the bundle's dataset_manifest)")
    parser.add_argument("--data-root", help="folder that the manifest's relative paths resolve against")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue from the run folder's models/checkpoint.pt")
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
    parser.add_argument("--background", action="store_true", help="run detached; output to <run>/logs/train_<time>.log")
    parser.set_defaults(func=run)


def source_bundle(args: argparse.Namespace) -> Path:
    """The bundle folder BUNDLE names: a folder with ``configs/``, else a bundle name in the search path."""
    folder = Path(args.bundle).expanduser()
    if (folder / "configs").is_dir():
        return folder
    found = find_bundle(args.bundle, args.bundle_dir)
    if found is None:
        searched = ", ".join(str(entry.path) for entry in bundle_search_path(args.bundle_dir))
        raise FileNotFoundError(f"{args.bundle}: no such bundle folder, nor a bundle name in {searched}")
    return found[0]


def existing_run_folder(args: argparse.Namespace, source: Path) -> Path | None:
    """The folder this training writes to, or None for a new ``runs/<bundle>/<UTC time>/``.

    ``--run-dir`` if given; else BUNDLE itself when it is a folder outside the bundle search path (a run
    folder, trained in place); else, with ``--resume``, the latest run of the bundle under ``runs/``;
    else None (the caller creates the new run folder once every check has passed).
    """
    if args.run_dir is not None:
        return Path(args.run_dir).expanduser()
    if source == Path(args.bundle).expanduser() and not is_in_search_path(source, args.bundle_dir):
        return source
    if args.resume:
        latest = latest_run(source.name)
        if latest is None:
            raise FileNotFoundError(f"{RUNS_DIR / source.name}: no run of {source.name} to resume (give --run-dir)")
        return latest
    return None


def start_in_background(run: Path, command: list[str]) -> int:
    """Start ``python -m pipeline <command>`` detached, its output in ``<run>/logs/train_<time>.log``."""
    log_dir = run / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"train_{time.strftime('%Y%m%d-%H%M%S')}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", *command],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    print(f"training in the background: pid {process.pid}, run folder {run}, log {log_path}")
    return 0


def write_curve(run: Path) -> Path | None:
    """``<run>/logs/validation_gain.png`` from the run's ``logs/metrics.csv``; None when it has no validation rows."""
    from pipeline.analysis.curves import join_logs, plot_training_curves

    log = run / "logs" / "metrics.csv"
    try:
        return plot_training_curves(join_logs([log]), run / "logs" / "validation_gain.png", title=str(run))
    except (OSError, ValueError):
        return None


def run(args: argparse.Namespace) -> int:
    try:
        check_bundle_dir(args.bundle_dir)
        source = source_bundle(args)
        folder = existing_run_folder(args, source)
    except OSError as err:
        return fail(error_message(err))
    if not (source / "configs" / "train.json").is_file():
        return fail(f"{source}: not a bundle with configs/train.json")
    if args.resume and not (folder / "models" / "checkpoint.pt").is_file():  # --resume always has a folder
        return fail(f"{folder / 'models' / 'checkpoint.pt'}: no checkpoint to resume from")
    if args.init_weights and not Path(args.init_weights).is_file():
        return fail(f"{args.init_weights}: no such weights file")
    if args.max_minutes is not None and not args.max_minutes > 0:
        return fail(f"--max-minutes must be > 0, got {args.max_minutes}")
    try:
        run_dir = prepare_run_folder(folder or new_run_folder(source.name), source)
    except OSError as err:
        return fail(f"{folder or RUNS_DIR / source.name}: cannot prepare the run folder: {error_message(err)}")
    try:
        layers = adopt_config_layers(run_dir, args.config)
    except OSError as err:
        return fail(error_message(err))
    if args.background:
        command = [a for a in sys.argv[1:] if a != "--background"]
        in_place = run_dir == source or args.run_dir is not None
        return start_in_background(run_dir, command if in_place else [*command, "--run-dir", str(run_dir)])

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
        record_session(run_dir, {key: value for key, value in vars(args).items() if key not in ("func", "command")})
        train(run_dir, ["train.json", *layers], initial_weights=initial, **overrides)
    except (OSError, ValueError) as err:
        return fail(str(err))
    curve = write_curve(run_dir)
    print(f"run folder: {run_dir}")
    print(
        f"best weights (val split): {run_dir / 'models' / 'model.pt'}; "
        f"checkpoint: {run_dir / 'models' / 'checkpoint.pt'}"
    )
    if curve is not None:
        print(f"validation curve: {curve}")
    if is_in_search_path(source, args.bundle_dir):
        print(f"to ship these weights: mrisr bundles export {run_dir} --to {display_path(source)}")
    return 0
