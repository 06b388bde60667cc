# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Per-method summary: mean ± sd, paired Wilcoxon against cubic, markdown table."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pipeline.evaluation.summary import METRIC_COLUMNS, paired_wilcoxon, summarize, summary_markdown


def per_scan_table(methods: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for method, psnrs in methods.items():
        for i, value in enumerate(psnrs):
            row = {column: 0.5 for column in METRIC_COLUMNS}
            row.update(scan_id=f"s{i}", subject_id=f"sub{i}", method=method, psnr=value, ssim=value / 100)
            rows.append(row)
    return pd.DataFrame(rows)


def test_paired_wilcoxon_edge_cases():
    assert paired_wilcoxon([1, 2, 3], [1, 2, 3]) == 1.0
    assert math.isnan(paired_wilcoxon([1.0], [2.0]))
    assert math.isnan(paired_wilcoxon([math.inf, 2.0], [1.0, 1.0]))  # one finite pair left
    # Six positive differences: the exact two-sided p is 2 / 2**6.
    assert paired_wilcoxon([2, 3, 4, 5, 6, 7], [1.0, 1.5, 2.2, 3.3, 4.1, 5.0]) == pytest.approx(2 / 64)


def test_summarize_means_gain_and_tests():
    table = per_scan_table({"cubic": [30, 31, 32, 33, 34, 35], "better": [31, 33, 34, 36, 37, 39]})
    summary = summarize(table).set_index("method")
    assert list(summary.index) == ["cubic", "better"]
    assert summary.loc["better", "n"] == 6
    assert summary.loc["better", "psnr_mean"] == pytest.approx(35.0)
    assert summary.loc["cubic", "psnr_sd"] == pytest.approx(pd.Series([30, 31, 32, 33, 34, 35]).std())
    assert summary.loc["better", "psnr_gain_vs_cubic"] == pytest.approx(2.5)
    assert summary.loc["better", "p_psnr_vs_cubic"] == pytest.approx(2 / 64)
    assert summary.loc["better", "p_ssim_vs_cubic"] == pytest.approx(2 / 64)
    assert math.isnan(summary.loc["cubic", "p_psnr_vs_cubic"])
    markdown = summary_markdown(summarize(table))
    assert "| better | 6 | 35.00 ± 2.90 |" in markdown
    assert "+2.50" in markdown and "0.0312" in markdown


def test_summarize_single_scan_and_missing_reference():
    summary = summarize(per_scan_table({"linear": [30.0], "nearest": [28.0]}))
    assert summary["n"].tolist() == [1, 1]
    assert summary["psnr_sd"].isna().all()
    assert summary["p_psnr_vs_cubic"].isna().all() and summary["psnr_gain_vs_cubic"].isna().all()
    assert "—" in summary_markdown(summary)
