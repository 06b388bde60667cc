# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Per-method summary of per-scan metrics: mean ± sd, and paired Wilcoxon tests against a reference."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

__all__ = ["METRIC_COLUMNS", "REFERENCE_METHOD", "paired_wilcoxon", "summarize", "summary_markdown"]

METRIC_COLUMNS = (
    "psnr",
    "ssim",
    "nrmse",
    "psnr_slice",
    "ssim_slice",
    "nrmse_slice",
    "sharpness_rel",
    "runtime_s",
    "data_consistency",
    "uncertainty_relative",
    "uncertainty_mean",
    "uncertainty_error_spearman",
)
REFERENCE_METHOD = "cubic"

# (column, header, format) of the markdown table; a "±" column shows mean ± sd.
_MARKDOWN_COLUMNS = (
    ("psnr", "PSNR (dB)", ".2f"),
    ("ssim", "SSIM", ".4f"),
    ("nrmse", "NRMSE", ".4f"),
    ("psnr_slice", "PSNR slice (dB)", ".2f"),
    ("ssim_slice", "SSIM slice", ".4f"),
    ("nrmse_slice", "NRMSE slice", ".4f"),
    ("sharpness_rel", "sharpness / HR", ".3f"),
    ("runtime_s", "runtime (s)", ".2f"),
)
# shown only when a run scored them (``mrisr evaluate --qc``)
_QC_MARKDOWN_COLUMNS = (
    ("data_consistency", "data consistency", ".4f"),
    ("uncertainty_error_spearman", "Spearman(uncertainty, error)", ".3f"),
)


def paired_wilcoxon(values: Sequence[float], reference: Sequence[float]) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test of paired samples.

    Pairs with a non-finite member (e.g. PSNR = inf) are dropped. Returns ``nan`` with fewer than
    two pairs left and 1.0 when every difference is zero (the samples are identical).
    """
    a, b = np.asarray(values, dtype=float), np.asarray(reference, dtype=float)
    finite = np.isfinite(a) & np.isfinite(b)
    a, b = a[finite], b[finite]
    if a.size < 2:
        return float("nan")
    if np.all(a == b):
        return 1.0
    return float(wilcoxon(a, b, alternative="two-sided").pvalue)


def summarize(per_scan: pd.DataFrame, reference: str = REFERENCE_METHOD) -> pd.DataFrame:
    """One row per method (in order of first appearance) summarising ``per_scan``.

    Args:
        per_scan: one row per (scan_id, method) with the :data:`METRIC_COLUMNS`.
        reference: the method the others are compared with (paired by ``scan_id``).

    Returns:
        DataFrame with ``method``, ``n`` (scans), ``<metric>_mean`` and ``<metric>_sd`` (sample
        sd, ``nan`` for n < 2) for each metric, ``n_paired`` (scans shared with the reference),
        ``psnr_gain_vs_<reference>`` (mean paired PSNR difference, dB), and
        ``p_psnr_vs_<reference>`` / ``p_ssim_vs_<reference>`` (see :func:`paired_wilcoxon`).
        The comparison columns are ``nan`` for the reference itself and when it is absent.
    """
    ref = per_scan[per_scan["method"] == reference].set_index("scan_id")
    rows = []
    for method, group in per_scan.groupby("method", sort=False):
        row: dict[str, object] = {"method": method, "n": len(group)}
        for column in METRIC_COLUMNS:
            values = group[column].astype(float)
            row[f"{column}_mean"] = float(values.mean())
            row[f"{column}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
        paired = group.set_index("scan_id").join(ref, rsuffix="_ref", how="inner")
        compare = method != reference and not paired.empty
        row["n_paired"] = len(paired) if method != reference else float("nan")
        gain = (paired["psnr"] - paired["psnr_ref"]).replace([np.inf, -np.inf], np.nan).mean() if compare else math.nan
        row[f"psnr_gain_vs_{reference}"] = float(gain)
        for metric in ("psnr", "ssim"):
            p_value = paired_wilcoxon(paired[metric], paired[f"{metric}_ref"]) if compare else math.nan
            row[f"p_{metric}_vs_{reference}"] = p_value
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(value: float, spec: str) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def summary_markdown(summary: pd.DataFrame, reference: str = REFERENCE_METHOD) -> str:
    """The summary as a markdown table: mean ± sd per metric, PSNR gain and p-values vs ``reference``."""
    shown = list(_MARKDOWN_COLUMNS) + [
        c for c in _QC_MARKDOWN_COLUMNS if f"{c[0]}_mean" in summary and summary[f"{c[0]}_mean"].notna().any()
    ]
    headers = ["method", "n"] + [h for _, h, _ in shown]
    headers += [f"ΔPSNR vs {reference} (dB)", f"p PSNR vs {reference}", f"p SSIM vs {reference}"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]
    for _, row in summary.iterrows():
        cells = [str(row["method"]), str(int(row["n"]))]
        for column, _, spec in shown:
            mean, sd = row[f"{column}_mean"], row[f"{column}_sd"]
            cells.append(_fmt(mean, spec) + ("" if math.isnan(sd) else f" ± {_fmt(sd, spec)}"))
        gain = row[f"psnr_gain_vs_{reference}"]
        cells.append(_fmt(gain, "+.2f"))
        cells += [_fmt(row[f"p_{m}_vs_{reference}"], ".3g") for m in ("psnr", "ssim")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
