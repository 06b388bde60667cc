# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Set a bundle's QC flagging limits (``qc_limits`` in its ``metadata.json``) from a validation run.

A limit is ``factor`` (default 1.5) times the largest value the bundle's outputs reached on the scans of
an ``mrisr evaluate --qc`` run on the ``val`` split: scans of the training distribution, never the test
scans, so that the test split can show how the limits behave. The source is recorded beside the limits.

Usage::

    mrisr evaluate --manifest data_manifests/malf_dev.csv --split val --protocol thick-4mm \\
        --methods cubic thick_slice --crop-to-mask --qc --output-dir results/thick-4mm-val
    mrisr report qc-limits bundles/thick_slice results/thick-4mm-val
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.io import atomic_write_text

__all__ = ["qc_limits_from_run", "write_qc_limits"]

LIMITED = ("data_consistency", "uncertainty_relative")


def qc_limits_from_run(results_dir: str | os.PathLike, method: str, factor: float = 1.5) -> dict[str, Any]:
    """``factor`` x the largest ``data_consistency`` and ``uncertainty_relative`` of ``method`` in a run.

    Raises:
        ValueError: the run has no QC columns for ``method`` (not ``mrisr evaluate --qc``).
    """
    path = Path(results_dir) / "per_scan_metrics.csv"
    table = pd.read_csv(path, dtype={"scan_id": str})
    rows = table[table["method"] == method]
    if rows.empty or any(column not in rows or rows[column].isna().all() for column in LIMITED):
        raise ValueError(f"{path}: no QC columns for {method!r}; run mrisr evaluate with --qc")
    limits: dict[str, Any] = {column: round(factor * float(rows[column].max()), 5) for column in LIMITED}
    limits["source"] = f"{factor:g} x the largest value over scans {', '.join(rows['scan_id'])} of {path.parent}"
    return limits


def write_qc_limits(bundle: str | os.PathLike, results_dir: str | os.PathLike, factor: float = 1.5) -> dict[str, Any]:
    """Write :func:`qc_limits_from_run` of the bundle's method into its ``configs/metadata.json``."""
    meta_path = Path(bundle) / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["qc_limits"] = qc_limits_from_run(results_dir, meta["name"], factor)
    atomic_write_text(meta_path, json.dumps(meta, indent=4, ensure_ascii=False) + "\n")
    return meta["qc_limits"]

