# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Per-method summary of per-scan metrics: mean ± sd, and paired Wilcoxon tests against a reference."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from pipeline.evaluation.downstream import downstream_column_names
from pipeline.evaluation.structures import NAMED_STRUCTURES

__all__ = [
    "METRIC_COLUMNS",
    "REFERENCE_METHOD",
    "downstream_markdown",
    "paired_wilcoxon",
    "summarize",
    "summary_markdown",
]

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
        Downstream columns that ``per_scan`` has (``mrisr evaluate --downstream``) get a mean, an sd and a
        ``p_<column>_vs_<reference>``. The comparison columns are ``nan`` for the reference itself and
        when it is absent.
    """
    downstream = [c for c in downstream_column_names() if c in per_scan and c != "segmentation_s"]
    ref = per_scan[per_scan["method"] == reference].set_index("scan_id")
    rows = []
    for method, group in per_scan.groupby("method", sort=False):
        row: dict[str, object] = {"method": method, "n": len(group)}
        for column in (*METRIC_COLUMNS, *downstream, *(["segmentation_s"] if "segmentation_s" in per_scan else [])):
            values = group[column].astype(float)
            row[f"{column}_mean"] = float(values.mean())
            row[f"{column}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
        paired = group.set_index("scan_id").join(ref, rsuffix="_ref", how="inner")
        compare = method != reference and not paired.empty
        row["n_paired"] = len(paired) if method != reference else float("nan")
        gain = (paired["psnr"] - paired["psnr_ref"]).replace([np.inf, -np.inf], np.nan).mean() if compare else math.nan
        row[f"psnr_gain_vs_{reference}"] = float(gain)
        for metric in ("psnr", "ssim", *downstream):
            p_value = paired_wilcoxon(paired[metric], paired[f"{metric}_ref"]) if compare else math.nan
            row[f"p_{metric}_vs_{reference}"] = p_value
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(value: float, spec: str) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _mean_sd(row: pd.Series, column: str, spec: str) -> str:
    """``mean ± sd`` of a summary row's ``column`` (the sd unsigned; no sd when it is nan)."""
    mean, sd = row[f"{column}_mean"], row[f"{column}_sd"]
    return _fmt(mean, spec) + ("" if math.isnan(sd) else f" ± {_fmt(sd, spec.lstrip('+'))}")


def _table_head(headers: Sequence[str]) -> list[str]:
    """A markdown table's header and alignment lines: first column left, the others right."""
    return ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]


def summary_markdown(summary: pd.DataFrame, reference: str = REFERENCE_METHOD) -> str:
    """The summary as a markdown table: mean ± sd per metric, PSNR gain and p-values vs ``reference``."""
    shown = list(_MARKDOWN_COLUMNS) + [
        c for c in _QC_MARKDOWN_COLUMNS if f"{c[0]}_mean" in summary and summary[f"{c[0]}_mean"].notna().any()
    ]
    headers = ["method", "n"] + [h for _, h, _ in shown]
    headers += [f"ΔPSNR vs {reference} (dB)", f"p PSNR vs {reference}", f"p SSIM vs {reference}"]
    lines = _table_head(headers)
    for _, row in summary.iterrows():
        cells = [str(row["method"]), str(int(row["n"]))] + [_mean_sd(row, column, spec) for column, _, spec in shown]
        gain = row[f"psnr_gain_vs_{reference}"]
        cells.append(_fmt(gain, "+.2f"))
        cells += [_fmt(row[f"p_{m}_vs_{reference}"], ".3g") for m in ("psnr", "ssim")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# (column, header, format) of the downstream table, shown when the run has the column
_DOWNSTREAM_MARKDOWN = (
    ("dice_gm", "GM Dice vs HR", ".4f"),
    ("volume_error_gm_pct", "GM volume error (%)", "+.2f"),
    ("dice_wm", "WM Dice vs HR", ".4f"),
    ("volume_error_wm_pct", "WM volume error (%)", "+.2f"),
    ("dice_csf", "CSF Dice vs HR", ".4f"),
    ("volume_error_csf_pct", "CSF volume error (%)", "+.2f"),
    ("dice_gm_manual", "GM Dice vs manual", ".4f"),
    ("dice_wm_manual", "WM Dice vs manual", ".4f"),
    ("segmentation_s", "segmentation (s)", ".1f"),
)


def downstream_markdown(summary: pd.DataFrame, reference: str = REFERENCE_METHOD) -> str:
    """The downstream summary as markdown tables (mean ± sd; p of the paired Wilcoxon test vs ``reference``).

    One table for the tissue check and one for the structures of the labels check, each present only when the
    run has its columns; an empty string when it has neither.
    """
    tables = []
    tissue = [c for c in _DOWNSTREAM_MARKDOWN if f"{c[0]}_mean" in summary]
    if tissue:
        tables.append(_downstream_table(summary, tissue, reference, ("dice_gm", "dice_wm")))
    structures = [
        (f"{kind}_error_{name}_pct", f"{name.replace('_', ' ')} {kind} error (%)", "+.2f")
        for name in NAMED_STRUCTURES
        for kind in ("intensity", "volume")
        if f"{kind}_error_{name}_pct_mean" in summary
    ]
    if structures:
        tables.append(_downstream_table(summary, structures, reference, ()))
    return "\n".join(tables)


def _downstream_table(
    summary: pd.DataFrame, shown: Sequence[tuple[str, str, str]], reference: str, tested: Sequence[str]
) -> str:
    headers = ["method", "n"] + [h for _, h, _ in shown] + [f"p {c.replace('_', ' ')} vs {reference}" for c in tested]
    lines = _table_head(headers)
    for _, row in summary.iterrows():
        cells = [str(row["method"]), str(int(row["n"]))] + [_mean_sd(row, column, spec) for column, _, spec in shown]
        cells += [_fmt(row.get(f"p_{c}_vs_{reference}", math.nan), ".3g") for c in tested]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
