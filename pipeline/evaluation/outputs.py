# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""The files of an evaluation run, all derived from its per-scan table and its failures.

Shared by a single-process run (:func:`~pipeline.evaluation.evaluate_cohort`) and by the merge of
a sharded one (:func:`~pipeline.evaluation.merge_evaluation_shards`), so both write the same
tables, figures and report from the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline.cohort import CohortReport
from pipeline.evaluation.downstream_figures import plot_downstream_boxplots, plot_tissue_panel
from pipeline.evaluation.figures import PanelSlices, plot_boxplots, plot_panel
from pipeline.evaluation.report import render_report
from pipeline.evaluation.summary import summarize, summary_markdown
from pipeline.inference import software_versions
from pipeline.io import atomic_write_text
from pipeline.protocols import Protocol

__all__ = [
    "FAILURE_COLUMNS",
    "MIN_MASK_FRACTION",
    "PER_SCAN_COLUMNS",
    "EvaluationResult",
    "EvaluationRun",
    "write_evaluation_outputs",
    "write_panels",
]

PER_SCAN_COLUMNS = (
    "scan_id",
    "subject_id",
    "method",
    "psnr",
    "ssim",
    "nrmse",
    "psnr_slice",
    "ssim_slice",
    "nrmse_slice",
    "sharpness_rel",
    "data_range",
    "runtime_s",
    "precision",
    "mask_source",
    "data_consistency",
    "uncertainty_relative",
    "uncertainty_mean",
    "uncertainty_error_spearman",
)
FAILURE_COLUMNS = ("scan_id", "method", "input", "error_type", "error", "where")
MIN_MASK_FRACTION = 0.05


@dataclass
class EvaluationResult:
    """What :func:`evaluate_cohort` produced.

    Attributes:
        output_dir: the folder holding every output.
        per_scan: one row per (scan, method), columns :data:`PER_SCAN_COLUMNS`.
        summary: one row per method (see :func:`~pipeline.evaluation.summary.summarize`).
        failures: one row per failed scan (``method`` empty) or (scan, method).
        files: output name → path (``per_scan_metrics``, ``summary_csv``, ``summary_md``,
            ``boxplot``, ``panel``, ``report``, and ``failures`` / ``volumes`` when written).
        reused: the outputs of an earlier run with the same settings and rows, which completed
            without failures, were returned instead of recomputed.
    """

    output_dir: Path
    per_scan: pd.DataFrame
    summary: pd.DataFrame
    failures: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)
    reused: bool = False

    @property
    def ok(self) -> bool:
        """True when no scan or method failed."""
        return self.failures.empty


@dataclass(frozen=True)
class EvaluationRun:
    """What the report says about a run.

    Attributes:
        protocol: the degradation protocol.
        manifest: the manifest path as given.
        split: the manifest split evaluated (``None``: every row).
        methods: method names, in order.
        n_rows: manifest rows selected (all shards together).
    """

    protocol: Protocol
    manifest: str
    split: str | None
    methods: list[str]
    n_rows: int


def write_panels(panel: PanelSlices | None, folder: Path, title: str) -> None:
    """Draw ``panel.png`` and, when the panel has tissue labels, ``tissue_panel.png`` in ``folder``;
    remove stale ones that this run does not draw."""
    tissue_path = folder / "tissue_panel.png"
    if panel is None:
        (folder / "panel.png").unlink(missing_ok=True)
        tissue_path.unlink(missing_ok=True)
        return
    plot_panel(panel, folder / "panel.png", title=title)
    if "HR" in panel.tissues and len(panel.tissues) > 1:
        plot_tissue_panel(panel, tissue_path, title=title)
    else:
        tissue_path.unlink(missing_ok=True)


def write_evaluation_outputs(
    out: Path,
    run: EvaluationRun,
    per_scan: pd.DataFrame,
    failures: pd.DataFrame,
    panel_scan: str | None = None,
) -> EvaluationResult:
    """Write ``failures.csv``, then the tables, the box plots and ``report.md`` into ``out``.

    Args:
        out: the output folder (exists).
        run: what was evaluated.
        per_scan: one row per (scan, method), columns :data:`PER_SCAN_COLUMNS`, in manifest order.
        failures: columns :data:`FAILURE_COLUMNS`; ``failures.csv`` is written when not empty, and a
            stale one removed otherwise.
        panel_scan: the scan shown in ``out/panel.png`` (and ``out/tissue_panel.png`` when the run
            had the ``tissue`` check), already drawn; ``None`` when there is none.

    Raises:
        RuntimeError: ``per_scan`` is empty (``failures.csv`` says why).
    """
    files: dict[str, Path] = {}
    failures_path = CohortReport(failures=failures.to_dict("records")).write_failures(out / "failures.csv")
    if failures_path is not None:
        files["failures"] = failures_path
    if per_scan.empty:
        raise RuntimeError(f"no scan could be evaluated; see {out / 'failures.csv'}")
    summary = summarize(per_scan)
    files["per_scan_metrics"] = atomic_write_text(out / "per_scan_metrics.csv", per_scan.to_csv(index=False))
    files["summary_csv"] = atomic_write_text(out / "summary.csv", summary.to_csv(index=False))
    files["summary_md"] = atomic_write_text(out / "summary.md", summary_markdown(summary))
    title = f"{run.protocol.name}, {per_scan['scan_id'].nunique()} scan(s)"
    scored = [name for name in run.methods if name in set(per_scan["method"])]
    files["boxplot"] = plot_boxplots(per_scan, out / "boxplot_psnr_ssim.png", scored, title=title)
    figures = {"PSNR and SSIM per method (box plots)": files["boxplot"].name}
    if "dice_gm" in per_scan and per_scan["dice_gm"].notna().any():
        files["downstream_boxplot"] = plot_downstream_boxplots(per_scan, out / "downstream_boxplots.png", scored, title)
        figures["Tissue Dice and volume error per method (box plots)"] = files["downstream_boxplot"].name
    if panel_scan is not None:
        files["panel"] = out / "panel.png"
        figures[f"Slices of scan {panel_scan} with |error| maps"] = files["panel"].name
        if (out / "tissue_panel.png").is_file():
            files["tissue_panel"] = out / "tissue_panel.png"
            figures[f"Tissue segmentations of scan {panel_scan}, disagreement with HR in red"] = "tissue_panel.png"
    report = render_report(
        protocol=run.protocol,
        manifest=run.manifest,
        split=run.split,
        methods=run.methods,
        n_rows=run.n_rows,
        per_scan=per_scan,
        summary=summary,
        failures=failures,
        figures=figures,
        min_mask_fraction=MIN_MASK_FRACTION,
        versions=software_versions(),
    )
    files["report"] = atomic_write_text(out / "report.md", report)
    return EvaluationResult(out, per_scan, summary, failures, files)
