# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Choose mDCSRN-GAN's shipped generator on the validation log: the most accurate one that is sharp enough.

PSNR alone favours the least adversarial generator (the paper's point is sharper texture at a small
PSNR cost), so the bundle selects among the generators saved at each validation
(``models/validated/generator_epoch=N.pt``, MONAI ``CheckpointSaver``) with two validation numbers of
``logs/metrics.csv``: the one with the highest ``val_psnr`` among those whose ``val_sharpness`` (mean
gradient magnitude in the brain mask relative to HR's) reaches ``min_sharpness``. Only ``val`` scans are
used, never ``test``.

Usage::

    python -m pipeline.training.gan_selection bundles/mdcsrn_gan --min-sharpness 0.99

writes the chosen generator to ``<bundle>/models/model.pt`` (atomically; ``--dry-run`` only reports).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.io.atomic import atomic_path

__all__ = ["select_generator", "snapshot_path"]


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle_root", type=Path)
    parser.add_argument("--min-sharpness", type=float, default=0.99, help="least val sharpness / HR (default 0.99)")
    parser.add_argument("--dry-run", action="store_true", help="report the choice, write nothing")
    args = parser.parse_args(argv)
    selected = select_generator(args.bundle_root, args.min_sharpness)
    print(
        f"epoch {selected['epoch']} (iteration {int(selected['iteration'])}): val_psnr {selected['val_psnr']:.3f} dB, "
        f"gain {selected['psnr_gain']:+.3f} dB, val_sharpness {selected['val_sharpness']:.4f} <- {selected['path']}"
    )
    if not args.dry_run:
        destination = args.bundle_root / "models" / "model.pt"
        with atomic_path(destination) as tmp:
            shutil.copyfile(selected["path"], tmp)
        print(f"wrote {destination}")


if __name__ == "__main__":
    main()
