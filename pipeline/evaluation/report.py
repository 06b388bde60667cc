# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""The markdown report of an evaluation run: what was evaluated, how, the results and the failures."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence

import pandas as pd

from pipeline.acceleration.precision import machine_description
from pipeline.evaluation.metrics import SSIM_KERNEL_SIGMA, SSIM_KERNEL_SIZE
from pipeline.evaluation.structures import NAMED_STRUCTURES, STRUCTURE_MARGIN_VOXELS
from pipeline.evaluation.summary import REFERENCE_METHOD, downstream_markdown, summary_markdown
from pipeline.evaluation.tissue import ATROPOS
from pipeline.protocols import Protocol

__all__ = ["render_report"]

_AXIS_NAMES = ("0 (sagittal slices for RAS-like volumes)", "1 (coronal slices)", "2 (axial slices)")


def _table(frame: pd.DataFrame) -> str:
    """A small DataFrame as a markdown table (cells as text, '|' escaped)."""
    headers = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(str(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |")
    return "\n".join(lines) + "\n"


def render_report(
    *,
    protocol: Protocol,
    manifest: str,
    split: str | None,
    methods: Sequence[str],
    n_rows: int,
    per_scan: pd.DataFrame,
    summary: pd.DataFrame,
    failures: pd.DataFrame,
    figures: dict[str, str],
    min_mask_fraction: float,
    versions: dict[str, str],
) -> str:
    """Render ``report.md``.

    Args:
        protocol: the degradation protocol evaluated.
        manifest: the manifest path as given.
        split: the manifest split evaluated (``None``: all rows).
        methods: method names, in order.
        n_rows: manifest rows selected.
        per_scan: per-(scan, method) metrics (with ``data_range`` and ``mask_source``).
        summary: output of :func:`~pipeline.evaluation.summary.summarize`.
        failures: one row per failed scan or (scan, method); may be empty.
        figures: caption → file name (relative to the report) of each figure.
        min_mask_fraction: the slice-wise metrics' threshold.
        versions: software versions.
    """
    scans = per_scan.drop_duplicates("scan_id")[["scan_id", "subject_id", "data_range", "mask_source"]]
    n_scans = len(scans)
    ranges = scans["data_range"].astype(float)
    scans = scans.assign(data_range=[f"{v:.6g}" for v in ranges])
    zoom = " × ".join(f"{z:g}" for z in protocol.zoom)
    lines = [
        f"# Super-resolution evaluation: `{protocol.name}`",
        "",
        f"Generated {_dt.datetime.now().astimezone().isoformat(timespec='seconds')} on a {machine_description()}"
        " (runtimes are this machine's).",
        "",
        "## What was evaluated",
        "",
        f"- **Protocol** `{protocol.name}`: {protocol.description}"
        + (f" (source: {protocol.source})" if protocol.source else "")
        + f"; zoom (HR voxels per LR voxel) {zoom}; LR made with seed {protocol.seed}.",
        f"- **Manifest** `{manifest}`, split `{split if split is not None else 'all rows'}`: "
        f"{n_rows} scan(s) selected, {n_scans} evaluated.",
        f"- **Methods**: {', '.join(f'`{m}`' for m in methods)}.",
        "- Each HR volume (and its mask) is cropped at the end of each axis to a multiple of the zoom; "
        "LR is synthesised from it and every method's output is compared with it on the HR grid.",
        "",
        "## Metrics",
        "",
        "All metrics are computed inside the brain mask (from the manifest's `mask` column, "
        "else the project's `BrainMask` of the HR; see `mask_source`).",
        "",
        "- **Data range** L = max − min of the HR intensities inside the mask, per scan, in the HR "
        f"volume's units (values below: min {ranges.min():.6g}, median {ranges.median():.6g}, "
        f"max {ranges.max():.6g}).",
        "- **PSNR** = 10·log10(L² / MSE) with the MSE over mask voxels (dB).",
        f"- **SSIM**: Gaussian window {SSIM_KERNEL_SIZE} voxels, σ = {SSIM_KERNEL_SIGMA} voxels, K1 = 0.01, "
        "K2 = 0.03 (MONAI's definition); the 3D SSIM map is averaged over the mask voxels at least 5 "
        "voxels from the volume border.",
        "- **NRMSE** = ‖SR − HR‖₂ / ‖HR‖₂ over the mask.",
        f"- **Slice-wise** (`*_slice`): the same per 2D slice across axis {_AXIS_NAMES[protocol.slice_axis]}, "
        f"the plane containing the degraded axes, averaged over slices with ≥ {min_mask_fraction:.0%} mask "
        "voxels; 2D SSIM; the volume's L for every slice.",
        "- **sharpness / HR**: mean gradient magnitude in the mask of SR over that of HR (1 = as sharp as HR).",
        "- **runtime**: seconds per volume for the method alone (this machine).",
        f"- **Tests**: paired two-sided Wilcoxon signed-rank test over scans against `{REFERENCE_METHOD}` "
        f"(with n scans the smallest attainable p is 2/2ⁿ = {2.0 / 2**n_scans:.3g} for n = {n_scans}); "
        "ΔPSNR is the mean paired difference.",
        "",
        "## Summary (mean ± sd over scans)",
        "",
        summary_markdown(summary),
        *_downstream_section(per_scan, summary),
        "## Figures",
        "",
    ]
    for caption, name in figures.items():
        lines += [f"[{caption}]({name})", "", f"![{caption}]({name})", ""]
    lines += ["## Data range per scan", "", _table(scans.rename(columns={"data_range": "data range L"}))]
    lines += ["## Failures", ""]
    lines += [_table(failures) if not failures.empty else "None.\n"]
    lines += ["## Software", "", _table(pd.DataFrame({"package": list(versions), "version": list(versions.values())}))]
    return "\n".join(lines)


def _downstream_section(per_scan: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """The report's lines on the downstream checks (none when the run had none)."""
    tables = downstream_markdown(summary)
    if not tables:
        return []
    lines = ["## Downstream checks (mean ± sd over scans)", ""]
    if "dice_gm" in per_scan:
        seconds = per_scan["segmentation_s"].astype(float)
        lines += [
            f"- **Tissue segmentation**: {ATROPOS.describe()}. The HR and every method's output are segmented "
            "alike; Dice and the signed volume error (SR − HR, % of HR) are against the HR's segmentation"
            + ("; `*_manual` against the manifest's manual tissue labels" if "dice_gm_manual" in per_scan else "")
            + f". Segmentation took {seconds.mean():.1f} s per output on average (max {seconds.max():.1f} s).",
        ]
    if any(c.startswith("intensity_error_") for c in per_scan):
        named = ", ".join(
            f"{name.replace('_', ' ')} ({'/'.join(map(str, ids))})" for name, ids in NAMED_STRUCTURES.items()
        )
        lines += [
            f"- **Structures** of the manifest's `labels` map (Neuromorphometrics labels): {named}. Intensity error "
            "= mean SR − mean HR in the structure, % of the HR mean; volume error = voxels within "
            f"{STRUCTURE_MARGIN_VOXELS} voxels of the structure whose intensity lies in the HR's 5th-95th "
            "percentile range inside it, SR − HR, % of HR.",
        ]
    return lines + ["", tables]
