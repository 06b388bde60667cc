# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Run a bundle's training (or evaluation) config from Python, as ``python -m monai.bundle run`` does."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigWorkflow

from pipeline.training.config_layers import config_layers
from pipeline.training.handlers import unwrap_module

__all__ = ["bundle_workflow", "load_initial_weights", "train"]


def bundle_workflow(
    bundle_root: str | os.PathLike,
    config_files: Sequence[str] = ("train.json",),
    *,
    workflow_type: str = "train",
    **overrides: Any,
) -> ConfigWorkflow:
    """A ``ConfigWorkflow`` over ``bundle_root/configs/<config_files>`` (merged in order), not yet initialised.

    ``train.json`` stands for its three layers (:func:`training_layers`): ``inference.json``, the shared
    base, ``train.json``, as ``python -m monai.bundle run --config_file "['configs/inference.json',
    '../common/train_base.json','configs/train.json']"`` reads them.

    Args:
        bundle_root: the bundle folder; also set as the config's ``bundle_root``.
        config_files: file names under ``configs/``, e.g. ``("train.json", "evaluate.json")``.
        workflow_type: "train" or "infer" (selects the bundle properties MONAI checks).
        overrides: config ids and values, e.g. ``{"train#trainer#max_epochs": 2}`` (pass ids with ``#`` via
            ``**{...}``).
    """
    root = Path(bundle_root).resolve()
    configs = root / "configs"
    files = [str(f) for f in config_layers(root, config_files)]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"bundle config(s) not found: {missing}")
    logging_file = configs / "logging.conf"
    return ConfigWorkflow(
        config_file=files,
        meta_file=str(configs / "metadata.json"),
        logging_file=str(logging_file) if logging_file.is_file() else False,
        workflow_type=workflow_type,
        bundle_root=str(root),
        **overrides,
    )


def load_initial_weights(workflow: ConfigWorkflow, weights: str | os.PathLike) -> None:
    """Load a weights file (a plain state dict, e.g. a bundle's ``models/model.pt``) into the workflow's ``network``.

    Runs after the config built (and, where its recipe says so, initialised or calibrated) the network,
    so training continues from ``weights`` with a fresh optimiser. Keys and shapes must match exactly.
    """
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is reported with its name
        raise ValueError(f"{path}: not a readable PyTorch weights file ({err})") from err
    network = unwrap_module(workflow.parser.get_parsed_content("network"))
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit this bundle's network: {str(err).splitlines()[0]}") from err


def train(
    bundle_root: str | os.PathLike,
    config_files: Sequence[str] = ("train.json",),
    initial_weights: str | os.PathLike | None = None,
    **overrides: Any,
) -> ConfigWorkflow:
    """Initialise, run and finalise a bundle's training workflow; return the finished workflow.

    Equivalent to ``python -m monai.bundle run --config_file <configs> --bundle_root <bundle_root> --<id> <value>``,
    plus, when ``initial_weights`` is given, :func:`load_initial_weights` before the run (continue
    training from a bundle's shipped weights). The trainer is ``workflow.train_trainer`` (bundle property
    ``trainer``) for inspection afterwards.
    """
    workflow = bundle_workflow(bundle_root, config_files, workflow_type="train", **overrides)
    workflow.initialize()
    if initial_weights is not None:
        load_initial_weights(workflow, initial_weights)
    workflow.run()
    workflow.finalize()
    return workflow
