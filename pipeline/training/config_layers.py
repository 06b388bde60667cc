# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Which config files a bundle's training reads, and in what order (no torch import: the CLI uses it at start-up)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["TRAIN_BASE", "config_layers", "train_base_file", "training_layers"]

TRAIN_BASE = "train_base.json"
"""The training workflow every bundle shares (``bundles/common/train_base.json``).

A bundle's training config is three layers, merged in this order: its ``configs/inference.json`` (the
network, protocol, grid and SR method, shared with inference), this base (data, trainer, validation,
checkpoints, logs), and its ``configs/train.json`` (the recipe: loss, optimiser, schedule, patches,
iterations: only what differs from the base).
"""


def training_layers(bundle_root: str | os.PathLike) -> list[Path]:
    """The config files a bundle's training starts from, in merge order (see :data:`TRAIN_BASE`)."""
    root = Path(bundle_root).resolve()
    return [root / "configs" / "inference.json", train_base_file(root), root / "configs" / "train.json"]


def config_layers(bundle_root: str | os.PathLike, config_files: Sequence[str]) -> list[Path]:
    """The files of ``config_files`` (names under ``configs/``), ``train.json`` expanded to its three layers."""
    configs = Path(bundle_root).resolve() / "configs"
    files: list[Path] = []
    for name in config_files:
        files += training_layers(bundle_root) if name == "train.json" else [configs / name]
    return files


def train_base_file(bundle_root: str | os.PathLike) -> Path:
    """The shared training base of a bundle: its own ``configs/train_base.json`` (a run folder's copy),
    else ``common/train_base.json`` in the ``bundles/`` folder that holds the bundle (or its ``configs/``,
    when that is a link into one).

    Raises:
        FileNotFoundError: none of those exists.
    """
    root = Path(bundle_root).resolve()
    configs = root / "configs"
    candidates = [configs / TRAIN_BASE, root.parent / "common" / TRAIN_BASE]
    candidates.append(configs.resolve().parent.parent / "common" / TRAIN_BASE)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{root}: no {TRAIN_BASE} (looked in configs/ and in ../common/): a bundle's train.json layers on it"
    )
