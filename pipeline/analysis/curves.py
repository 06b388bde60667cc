# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Plot a training log: validation PSNR gain over the baseline against iterations, and the training loss.

Reads the CSV that :class:`pipeline.training.MetricsCSVLogger` writes (``logs/metrics.csv``: one row
per epoch with ``iteration``, ``train_loss`` and, on validation epochs, ``psnr_gain`` in dB). Several
logs (the stages of one training) are joined in order, the iterations of each continuing the last.
A reader of a bundle's docs sees from the figure whether the validation curve has flattened.

Usage::

    mrisr report curves bundles/mdcsrn/docs/training_log.csv -o bundles/mdcsrn/docs/validation_gain.png
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipeline.io import atomic_path

__all__ = ["join_logs", "plot_training_curves"]


def join_logs(paths: Sequence[str | os.PathLike], start_iteration: int = 0) -> pd.DataFrame:
    """The rows of several metrics logs, in order, with ``iteration`` made cumulative across them.

    A log that continues the previous one (its first iteration is larger than the previous log's last,
    as after ``--resume``) keeps its iteration numbers; a log that starts again from 0 (a new stage
    started from the previous stage's weights) is shifted by the previous log's last iteration.
    ``start_iteration``: iterations behind the weights the first log started from (a run started with
    ``--init-weights`` from weights whose own log is not given), added to the first log the same way.
    """
    if not paths:
        raise ValueError("no metrics log given")
    tables, offset = [], start_iteration
    for stage, path in enumerate(paths):
        table = pd.read_csv(path)
        if "iteration" not in table.columns or table.empty:
            raise ValueError(f"{path}: not a metrics log (no rows with an 'iteration' column)")
        if int(table["iteration"].iloc[0]) <= offset:
            table["iteration"] = table["iteration"] + offset
        table["stage"] = stage
        offset = int(table["iteration"].iloc[-1])
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def plot_training_curves(log: pd.DataFrame, output: str | os.PathLike, title: str = "") -> Path:
    """Write a PNG: validation PSNR gain (dB) over the baseline (top) and training loss (bottom) against iterations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "psnr_gain" not in log.columns or log["psnr_gain"].isna().all():
        raise ValueError("the log has no validation rows (column 'psnr_gain')")
    validated = log.dropna(subset=["psnr_gain"])
    figure, (gain_axis, loss_axis) = plt.subplots(2, 1, figsize=(6.4, 5.6), sharex=True)
    gain_axis.plot(validated["iteration"], validated["psnr_gain"], marker="o", markersize=3)
    best = validated.loc[validated["psnr_gain"].idxmax()]
    gain_axis.annotate(
        f"best {best['psnr_gain']:+.2f} dB", (best["iteration"], best["psnr_gain"]), textcoords="offset points",
        xytext=(0, -14), ha="center", fontsize=8,
    )
    gain_axis.axhline(0.0, color="grey", linewidth=0.8)
    gain_axis.set_ylabel("val PSNR gain over cubic (dB)")
    gain_axis.grid(alpha=0.3)
    loss_axis.plot(log["iteration"], log["train_loss"], color="tab:orange")
    loss_axis.set_ylabel("training loss (epoch mean)")
    loss_axis.set_xlabel("iteration")
    loss_axis.grid(alpha=0.3)
    losses = log["train_loss"].dropna()
    if losses.gt(0).all() and losses.max() > 10 * losses.min():  # log scale only where it spans a decade
        loss_axis.set_yscale("log")
    for stage_start in log.groupby("stage")["iteration"].min().iloc[1:]:
        for axis in (gain_axis, loss_axis):
            axis.axvline(stage_start, color="grey", linestyle=":", linewidth=0.8)
    if title:
        gain_axis.set_title(title)
    figure.tight_layout()
    output = Path(output)
    with atomic_path(output) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)
    return output

