# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Run folders: where ``mrisr train`` writes, so that training never writes into a shipped bundle.

A run folder is a bundle folder of its own (training runs with ``bundle_root`` set to it):

- ``configs/``: a copy of the source bundle's configs, made when the run starts (what the run used), and
  any extra layer given to ``mrisr train --config`` as a path;
- ``models/checkpoint.pt`` (every epoch, for ``--resume``) and ``models/model.pt`` (best on the val split);
- ``logs/``: ``metrics.csv``, TensorBoard events, ``train_<time>.log`` of a background run and the
  curve ``validation_gain.png``;
- ``run.json``: the source bundle, its version, when the run was created and each session's options.

New runs go to ``runs/<bundle>/<UTC time>/`` under the working folder (``runs/`` is ignored by git).
``mrisr bundles export RUN --to bundles/<bundle>`` is the one way its weights replace a bundle's.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.io import atomic_path, atomic_write_json, read_json
from pipeline.training.config_layers import TRAIN_BASE, train_base_file

__all__ = [
    "RUN_RECORD",
    "RUNS_DIR",
    "adopt_config_layers",
    "display_path",
    "latest_run",
    "new_run_folder",
    "prepare_run_folder",
    "read_run_record",
    "record_session",
    "utc_now",
]

RUN_RECORD = "run.json"
RUNS_DIR = Path("runs")


def utc_now() -> str:
    """The current UTC time as ISO 8601 to the second, e.g. ``2026-12-03T19:25:00Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def display_path(path: str | os.PathLike) -> str:
    """``path`` relative to the working folder when it lies inside it (``runs/srcnn/...``), else absolute."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


def new_run_folder(bundle_name: str, runs_dir: str | os.PathLike = RUNS_DIR) -> Path:
    """Create and return an empty ``<runs_dir>/<bundle_name>/<UTC time>/`` (``-1``, ``-2``... when taken)."""
    parent = Path(runs_dir) / bundle_name
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1000):
        folder = parent / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"{parent}: no free run folder name for {stamp}")


def read_run_record(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's ``run.json`` ({} for a run folder made before run records, or by hand)."""
    path = Path(run_dir) / RUN_RECORD
    return read_json(path) if path.is_file() else {}


def _copy_train_base(source: Path, configs: Path) -> None:
    """Copy ``source``'s shared training base into ``configs`` when there is one (training names it if not)."""
    try:
        shutil.copyfile(train_base_file(source), configs / TRAIN_BASE)
    except FileNotFoundError:
        pass  # bundle_workflow says which file is missing when the run starts


def prepare_run_folder(run_dir: str | os.PathLike, source: str | os.PathLike) -> Path:
    """Give ``run_dir`` a copy of ``source``'s ``configs/`` (with the shared ``train_base.json``) and a
    ``run.json``, unless it already has configs.

    A run folder that has configs (an earlier session of this run, or a folder prepared by hand) keeps
    them (given the source's training base if they lack one): a resumed run goes on with the configs it
    started with. The copy is made under a temporary name and renamed, so a run folder never holds half a
    copy.
    """
    run = Path(run_dir)
    configs = run / "configs"
    if configs.is_dir():
        if (configs / "train.json").is_file() and not (configs / TRAIN_BASE).is_file():  # prepared by hand
            _copy_train_base(source, configs)
        return run
    source = Path(source)
    run.mkdir(parents=True, exist_ok=True)
    partial = run / ".configs.tmp"
    shutil.rmtree(partial, ignore_errors=True)  # left by a killed start
    shutil.copytree(source / "configs", partial)
    if (source / "configs" / "train.json").is_file() and not (partial / TRAIN_BASE).is_file():
        _copy_train_base(source, partial)  # the run keeps the base it started with
    partial.rename(configs)
    meta_path = source / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    record = {
        "bundle": meta.get("name", source.name),
        "bundle_version": meta.get("version"),
        "source": str(source.resolve()),
        "created": utc_now(),
        "sessions": [],
    }
    atomic_write_json(run / RUN_RECORD, record)
    return run


def adopt_config_layers(run_dir: str | os.PathLike, layers: Sequence[str]) -> list[str]:
    """The names under ``<run_dir>/configs/`` of ``layers``, after copying in those given as paths.

    A layer that is a JSON file at the given path (e.g. ``my_layer.json`` in the working folder, an
    experiment's one extra setting) is copied into ``configs/`` (atomically) so that the run keeps every
    layer it was trained with and ``--resume`` finds them; if ``configs/`` already has that file, it is
    used. Any other layer is a name under ``configs/`` (``train_cpu.json``) and is returned unchanged
    (training names it if it is missing).

    Raises:
        FileExistsError: ``configs/`` holds a file of that name with other contents than the given one.
    """
    configs = Path(run_dir) / "configs"
    names: list[str] = []
    for layer in layers:
        given = Path(layer).expanduser()
        if not given.is_file():
            names.append(layer)
            continue
        target = configs / given.name
        if not target.is_file():
            with atomic_path(target) as tmp:
                shutil.copyfile(given, tmp)
        elif target.read_bytes() != given.read_bytes():
            raise FileExistsError(f"{target}: holds another {given.name} than {given}; rename one of them")
        names.append(given.name)
    return names


def record_session(run_dir: str | os.PathLike, options: dict[str, Any]) -> None:
    """Append this training session (UTC start time, the command's options) to the run's ``run.json``."""
    record = read_run_record(run_dir)
    record.setdefault("sessions", []).append({"started": utc_now(), "options": options})
    atomic_write_json(Path(run_dir) / RUN_RECORD, record)


def latest_run(bundle_name: str, runs_dir: str | os.PathLike = RUNS_DIR) -> Path | None:
    """The run folder under ``<runs_dir>/<bundle_name>/`` whose checkpoint was written last, or None."""
    checkpoints = list((Path(runs_dir) / bundle_name).glob("*/models/checkpoint.pt"))
    if not checkpoints:
        return None
    return max(checkpoints, key=lambda path: path.stat().st_mtime).parents[1]
