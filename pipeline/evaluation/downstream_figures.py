# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Figures of the downstream checks: Dice and volume-error box plots per method, and one slice's tissue
segmentations (HR, cubic B-spline, the best network) with the voxels that disagree with HR marked."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap

from pipeline.evaluation.figures import PanelSlices, boxplot_per_method, mask_window, new_figure, save_png
from pipeline.evaluation.tissue import TISSUES
from pipeline.inference import BASELINE_NAMES

__all__ = ["plot_downstream_boxplots", "plot_tissue_panel", "tissue_panel_methods"]

# background, CSF, GM, WM
_TISSUE_COLOURS = ListedColormap(["black", "#3b6fb6", "#9a9a9a", "#f2f2f2"])
_REFERENCE = "cubic"


def plot_downstream_boxplots(
    per_scan: pd.DataFrame, path: str | os.PathLike, methods: Sequence[str], title: str = ""
) -> Path:
    """Box plots per method of the GM and WM Dice against HR and the GM and WM volume errors (%).

    Args:
        per_scan: one row per (scan_id, method) with ``dice_gm``, ``dice_wm``, ``volume_error_gm_pct`` and
            ``volume_error_wm_pct``.
        path: destination PNG.
        methods: the methods to show, in order.
        title: figure title.
    """
    panels = (
        ("dice_gm", "GM Dice vs HR segmentation"),
        ("dice_wm", "WM Dice vs HR segmentation"),
        ("volume_error_gm_pct", "GM volume error (%, SR − HR)"),
        ("volume_error_wm_pct", "WM volume error (%, SR − HR)"),
    )
    fig = new_figure(max(8.0, 1.5 * len(methods) + 3), 7.5)
    for ax, (column, label) in zip(fig.subplots(2, 2).ravel(), panels):
        boxplot_per_method(ax, per_scan, methods, column, label)
        if column.startswith("volume_error"):
            ax.axhline(0.0, color="k", linewidth=0.8)
    if title:
        fig.suptitle(title)
    return save_png(fig, path)


def tissue_panel_methods(panel: PanelSlices) -> list[str]:
    """The methods the tissue panel shows: cubic B-spline and the network with the highest PSNR on the scan."""
    shown = [_REFERENCE] if _REFERENCE in panel.tissues else []
    networks = [m for m in panel.tissues if m != "HR" and m not in BASELINE_NAMES]
    if networks:
        shown.append(max(networks, key=lambda m: panel.psnr.get(m, -np.inf)))
    return shown


def plot_tissue_panel(panel: PanelSlices, path: str | os.PathLike, title: str = "", box_margin: int = 4) -> Path:
    """One slice's tissue labels: HR, then cubic and the best network with their disagreement with HR in red.

    Args:
        panel: the slices, with ``tissues["HR"]`` and each method's tissue labels (0 background,
            1 CSF, 2 GM, 3 WM).
        path: destination PNG.
        title: figure title.
        box_margin: voxels kept around the mask's bounding box (:func:`~pipeline.evaluation.figures.mask_window`).
    """
    window = mask_window(panel.mask, box_margin)
    reference = panel.tissues["HR"][window]
    methods = tissue_panel_methods(panel)
    width = 3.2
    height = width * reference.shape[1] / reference.shape[0] * panel.aspect
    fig = new_figure(width * (1 + len(methods)) + 0.6, height + 1.2)
    axes = np.atleast_1d(fig.subplots(1, 1 + len(methods)))

    def show(ax, labels: np.ndarray, label: str) -> None:
        ax.imshow(
            labels.T, origin="lower", aspect=panel.aspect, interpolation="nearest", cmap=_TISSUE_COLOURS, vmin=0, vmax=3
        )
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])

    show(axes[0], reference, "HR segmentation\n(CSF blue, GM grey, WM white)")
    inside = reference > 0
    for ax, name in zip(axes[1:], methods):
        labels = panel.tissues[name][window]
        differs = (labels != reference) & inside
        show(ax, labels, f"{name}: {differs.sum() / max(inside.sum(), 1):.1%} of the slice's brain differs (red)")
        overlay = np.zeros((*differs.T.shape, 4))
        overlay[differs.T] = (0.9, 0.1, 0.1, 0.85)
        ax.imshow(overlay, origin="lower", aspect=panel.aspect, interpolation="nearest")
    where = f"scan {panel.scan_id}, {panel.plane} slice {panel.index}; tissues: {', '.join(TISSUES)}"
    fig.suptitle(f"{title} — {where}" if title else where, fontsize=10)
    return save_png(fig, path)
