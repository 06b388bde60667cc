# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Evaluation of SR methods: masked PSNR/SSIM/NRMSE (volume and slice-wise), sharpness, cohort reports
(single-process or sharded and merged)."""

from __future__ import annotations

from pipeline.evaluation.evaluate import PER_SCAN_COLUMNS, EvaluationResult, evaluate_cohort
from pipeline.evaluation.figures import PanelSlices, plot_boxplots, plot_panel
from pipeline.evaluation.metrics import data_range, nrmse, psnr, slicewise_metrics, ssim, ssim_map
from pipeline.evaluation.shards import merge_evaluation_shards
from pipeline.evaluation.sharpness import mean_gradient_magnitude, relative_sharpness
from pipeline.evaluation.summary import METRIC_COLUMNS, REFERENCE_METHOD, paired_wilcoxon, summarize, summary_markdown

__all__ = [
    "METRIC_COLUMNS",
    "PER_SCAN_COLUMNS",
    "REFERENCE_METHOD",
    "EvaluationResult",
    "PanelSlices",
    "data_range",
    "evaluate_cohort",
    "mean_gradient_magnitude",
    "merge_evaluation_shards",
    "nrmse",
    "paired_wilcoxon",
    "plot_boxplots",
    "plot_panel",
    "psnr",
    "relative_sharpness",
    "slicewise_metrics",
    "ssim",
    "ssim_map",
    "summarize",
    "summary_markdown",
]
