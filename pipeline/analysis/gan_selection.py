# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Choose mDCSRN-GAN's shipped generator on the validation log: the most accurate one that is sharp enough.

PSNR alone favours the least adversarial generator (the paper's point is sharper texture at a small
PSNR cost), so the bundle selects among the generators saved at each validation
(``models/validated/generator_epoch=N.pt``, MONAI ``CheckpointSaver``) with two validation numbers of
``logs/metrics.csv``: the one with the highest ``val_psnr`` among those whose ``val_sharpness`` (mean
gradient magnitude in the brain mask relative to HR's) reaches ``min_sharpness``. Only ``val`` scans are
used, never ``test``.

Usage::

    mrisr report gan-selection bundles/mdcsrn_gan --min-sharpness 0.99

writes the chosen generator to ``<bundle>/models/model.pt`` (atomically; ``--dry-run`` only reports).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.io.atomic import atomic_path

__all__ = ["select_generator", "write_selected_generator", "snapshot_path"]


def snapshot_path(bundle_root: str | os.PathLike, epoch: int) -> Path:
    """The generator saved at the end of ``epoch`` (1-based) by the bundle's validated-snapshot saver."""
    return Path(bundle_root) / "models" / "validated" / f"generator_epoch={epoch}.pt"


def select_generator(bundle_root: str | os.PathLike, min_sharpness: float) -> dict[str, Any]:
    """The validated epoch with the best ``val_psnr`` among those with ``val_sharpness >= min_sharpness``.

    Args:
        bundle_root: the bundle folder with ``logs/metrics.csv`` and ``models/validated/``.
        min_sharpness: the least acceptable sharpness relative to HR (dimensionless, HR = 1).

    Returns:
        The chosen epoch's row of the log (``epoch``, ``iteration``, ``val_psnr``, ``psnr_gain``,
        ``val_sharpness``, ...) and ``path``, its saved generator.

    Raises:
        FileNotFoundError: the log or the chosen epoch's generator is missing.
        ValueError: the log has no validation rows, or none reaches ``min_sharpness`` (the message gives
            the sharpest).
    """
    log_path = Path(bundle_root) / "logs" / "metrics.csv"
    if not log_path.is_file():
        raise FileNotFoundError(f"{log_path}: no validation log (train the bundle first)")
    log = pd.read_csv(log_path)
    if "val_sharpness" not in log.columns or log["val_sharpness"].isna().all():
        raise ValueError(f"{log_path}: no validation rows with val_sharpness")
    validated = log.dropna(subset=["val_psnr", "val_sharpness"]).drop_duplicates("epoch", keep="last")
    sharp_enough = validated[validated["val_sharpness"] >= min_sharpness]
    if sharp_enough.empty:
        sharpest = validated.loc[validated["val_sharpness"].idxmax()]
        raise ValueError(
            f"{log_path}: no validated epoch reaches val_sharpness {min_sharpness}; the sharpest is epoch "
            f"{int(sharpest['epoch'])} at {sharpest['val_sharpness']:.4f}"
        )
    row = sharp_enough.loc[sharp_enough["val_psnr"].idxmax()]
    path = snapshot_path(bundle_root, int(row["epoch"]))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the generator of the selected epoch {int(row['epoch'])} is missing")
    selected = row.to_dict()
    selected["epoch"] = int(row["epoch"])
    selected["path"] = path
    return selected


def write_selected_generator(bundle_root: str | os.PathLike, selected: dict[str, Any]) -> Path:
    """Copy the generator chosen by :func:`select_generator` to ``<bundle_root>/models/model.pt`` (atomically)."""
    destination = Path(bundle_root) / "models" / "model.pt"
    with atomic_path(destination) as tmp:
        shutil.copyfile(selected["path"], tmp)
    return destination
