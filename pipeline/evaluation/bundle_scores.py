# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Write a bundle's ``metadata.json`` ``eval_metrics`` from an ``mrisr evaluate`` output folder.

The scores a bundle advertises come from the project's evaluation command (PSNR, SSIM and sharpness in
the brain mask, data range = HR max − min in the mask), on the split that folder was run on (``test`` by
default: scans never used to choose anything), never from the training log.

Usage::

    mrisr evaluate --manifest data_manifests/malf_dev.csv --protocol bicubic-x2 --methods cubic srcnn \\
        --crop-to-mask --output-dir results/bicubic-x2
    mrisr report bundle-scores bundles/srcnn results/bicubic-x2
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.io import atomic_write_text

__all__ = ["bundle_scores", "write_bundle_scores"]


def bundle_scores(results_dir: str | os.PathLike, method: str, split: str = "test") -> dict[str, Any]:
    """``eval_metrics`` of ``method`` from ``<results_dir>/per_scan_metrics.csv`` (means over scans).

    Returns PSNR (dB), SSIM, sharpness relative to HR for the method and for cubic B-spline of the same
    run, the mean paired PSNR gain over cubic (dB), the number of scans and how many of them the method
    beats cubic on, and the split.

    Raises:
        ValueError: the folder has no rows for ``method`` or for ``cubic``, or they cover different scans.
    """
    path = Path(results_dir) / "per_scan_metrics.csv"
    if not path.is_file():
        raise ValueError(f"{path}: no such file (not an 'mrisr evaluate' output folder)")
    table = pd.read_csv(path, dtype={"scan_id": str})
    rows = {name: table[table["method"] == name].set_index("scan_id") for name in (method, "cubic")}
    for name, rows_of in rows.items():
        if rows_of.empty:
            raise ValueError(f"{path}: no rows for method {name!r} (methods: {sorted(table['method'].unique())})")
    net, cubic = rows[method], rows["cubic"]
    if set(net.index) != set(cubic.index):
        raise ValueError(f"{path}: {method!r} and 'cubic' were scored on different scans")
    gain = net["psnr"] - cubic.loc[net.index, "psnr"]
    return {
        "split": split,
        "scans": int(len(net)),
        "mrisr_evaluate_psnr_db": round(float(net["psnr"].mean()), 2),
        "mrisr_evaluate_cubic_psnr_db": round(float(cubic["psnr"].mean()), 2),
        "psnr_gain_db": round(float(gain.mean()), 2),
        "scans_above_cubic": int((gain > 0).sum()),
        "mrisr_evaluate_ssim": round(float(net["ssim"].mean()), 4),
        "sharpness_rel": round(float(net["sharpness_rel"].mean()), 3),
        "cubic_sharpness_rel": round(float(cubic["sharpness_rel"].mean()), 3),
    }


def write_bundle_scores(
    bundle_root: str | os.PathLike, results_dir: str | os.PathLike, method: str | None = None, split: str = "test"
) -> dict[str, Any]:
    """Replace ``eval_metrics`` in ``<bundle_root>/configs/metadata.json`` (written atomically); return it.

    ``method`` defaults to the bundle's ``name`` in its metadata.
    """
    meta_path = Path(bundle_root) / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    scores = bundle_scores(results_dir, method or meta["name"], split)
    meta["eval_metrics"] = scores
    meta.pop("eval_metrics_note", None)
    atomic_write_text(meta_path, json.dumps(meta, indent=4, ensure_ascii=False) + "\n")
    return scores

