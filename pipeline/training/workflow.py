# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Run a bundle's training (or evaluation) config from Python, as ``python -m monai.bundle run`` does."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai.bundle import ConfigWorkflow

__all__ = ["bundle_workflow", "train"]


def bundle_workflow(
    bundle_root: str | os.PathLike,
    config_files: Sequence[str] = ("train.json",),
    *,
    workflow_type: str = "train",
    **overrides: Any,
) -> ConfigWorkflow:
    """A ``ConfigWorkflow`` over ``bundle_root/configs/<config_files>`` (merged in order), not yet initialised.

    Args:
        bundle_root: the bundle folder; also set as the config's ``bundle_root``.
        config_files: file names under ``configs/``, e.g. ``("train.json", "evaluate.json")``.
        workflow_type: "train" or "infer" (selects the bundle properties MONAI checks).
        overrides: config ids and values, e.g. ``{"train#trainer#max_epochs": 2}`` (pass ids with ``#`` via
            ``**{...}``).
    """
    root = Path(bundle_root).resolve()
    configs = root / "configs"
    files = [str(configs / name) for name in config_files]
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


def train(
    bundle_root: str | os.PathLike, config_files: Sequence[str] = ("train.json",), **overrides: Any
) -> ConfigWorkflow:
    """Initialise, run and finalise a bundle's training workflow; return the finished workflow.

    Equivalent to ``python -m monai.bundle run --config_file <configs> --bundle_root <bundle_root> --<id> <value>``.
    The trainer is ``workflow.train_trainer`` (bundle property ``trainer``) for inspection afterwards.
    """
    workflow = bundle_workflow(bundle_root, config_files, workflow_type="train", **overrides)
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return workflow
