# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Evaluation figures: box plots of per-scan metrics and a side-by-side slice panel with error maps and
a magnified detail (texture is invisible at whole-slice scale).

Figures are drawn on matplotlib ``Figure`` objects with the Agg canvas (no display needed, and the
global pyplot backend of the caller is left alone) and saved atomically as PNG.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from scipy.ndimage import uniform_filter

from pipeline.io.atomic import atomic_path

__all__ = [
    "PanelSlices",
    "boxplot_per_method",
    "detail_window",
    "mask_window",
    "new_figure",
    "plot_boxplots",
    "plot_panel",
    "save_png",
]


@dataclass
class PanelSlices:
    """One 2D slice of HR, LR and each SR method, on the HR grid, for the comparison panel.

    Attributes:
        scan_id: the scan the slice comes from.
        slice_axis: the spatial axis sliced across (0, 1 or 2).
        index: the slice's index along ``slice_axis`` (HR voxels).
        plane: the anatomical plane of the slice ("sagittal", "coronal", "axial" or "oblique").
        aspect: displayed pixel height / width: spacing of the slice's second axis / first axis (mm/mm).
        hr: (A, B) HR slice, the axes being the remaining spatial axes in order.
        lr: (A, B) LR slice, nearest-neighbour upsampled onto the HR grid.
        mask: (A, B) boolean brain-mask slice (not empty).
        sr: method name → (A, B) SR slice.
        psnr: method name → whole-volume masked PSNR (dB) for the titles.
        uncertainty: method name → (A, B) slice of its uncertainty map (``mrisr evaluate --qc``), if any.
        tissues: "HR" and method names → (A, B) tissue-label slice (``mrisr evaluate --downstream tissue``).
    """

    scan_id: str
    slice_axis: int
    index: int
    plane: str
    aspect: float
    hr: np.ndarray
    lr: np.ndarray
    mask: np.ndarray
    sr: dict[str, np.ndarray] = field(default_factory=dict)
    psnr: dict[str, float] = field(default_factory=dict)
    uncertainty: dict[str, np.ndarray] = field(default_factory=dict)
    tissues: dict[str, np.ndarray] = field(default_factory=dict)


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure (inches) on its own Agg canvas: no display, pyplot's state untouched."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | os.PathLike) -> Path:
    """Save ``fig`` as a 120-dpi PNG atomically (a temporary name, then a rename)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return Path(path)


def boxplot_per_method(ax: Axes, per_scan: pd.DataFrame, methods: Sequence[str], column: str, label: str) -> None:
    """One box per method of ``per_scan[column]`` (finite values), each scan drawn as a dot."""
    data = [per_scan.loc[per_scan["method"] == m, column].astype(float).to_numpy() for m in methods]
    data = [d[np.isfinite(d)] for d in data]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(methods) + 1), methods, rotation=30, ha="right")
    for position, values in enumerate(data, start=1):
        offsets = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(len(values))
        ax.plot(position + offsets, values, "o", color="tab:blue", alpha=0.6, markersize=4)
    ax.set_ylabel(label)
    ax.grid(axis="y", alpha=0.3)


def plot_boxplots(per_scan: pd.DataFrame, path: str | os.PathLike, methods: Sequence[str], title: str = "") -> Path:
    """Box plots of whole-volume PSNR and SSIM per method, with each scan drawn as a dot.

    Args:
        per_scan: one row per (scan_id, method) with ``psnr`` (dB) and ``ssim`` columns.
        path: destination PNG.
        methods: the methods to show, in order.
        title: figure title.
    """
    fig = new_figure(max(6.0, 1.6 * len(methods) + 2), 4.2)
    axes = fig.subplots(1, 2)
    for ax, (column, label) in zip(axes, (("psnr", "PSNR in brain mask (dB)"), ("ssim", "SSIM in brain mask"))):
        boxplot_per_method(ax, per_scan, methods, column, label)
    if title:
        fig.suptitle(title)
    return save_png(fig, path)


def detail_window(hr: np.ndarray, mask: np.ndarray, size: int = 48) -> tuple[slice, slice]:
    """The ``size`` x ``size`` window of a 2D slice, inside the mask, where HR has the most edges.

    Chosen by the mean HR gradient magnitude over windows lying wholly inside the mask (or, when none
    does, over all windows, weighted by the mask), so it falls on cortex or other fine structure.

    Args:
        hr: (A, B) HR slice.
        mask: (A, B) boolean mask slice, not empty.
        size: window side in voxels (clipped to the slice).

    Returns:
        The window as (rows, columns) slices of the slice's two axes.
    """
    size = max(1, min(size, *hr.shape))
    inside = mask.astype(np.float64)
    gradient = np.hypot(*np.gradient(hr.astype(np.float64))) * inside
    edges = uniform_filter(gradient, size, mode="constant")
    coverage = uniform_filter(inside, size, mode="constant")
    half = size // 2
    valid = np.zeros_like(inside, dtype=bool)
    last_row, last_col = hr.shape[0] - (size - 1 - half), hr.shape[1] - (size - 1 - half)
    valid[half:last_row, half:last_col] = True
    score = np.where(valid & (coverage > 1 - 1e-6), edges, -np.inf)
    if not np.isfinite(score).any():
        score = np.where(valid, edges * coverage, -np.inf)
    row, col = (int(i) for i in np.unravel_index(int(np.argmax(score)), score.shape))
    return slice(row - half, row - half + size), slice(col - half, col - half + size)


def mask_window(mask: np.ndarray, box_margin: int) -> tuple[slice, slice]:
    """The (rows, cols) window of a 2D slice: the mask's bounding box plus ``box_margin`` voxels, inside the slice."""
    rows, cols = np.nonzero(mask)
    return (
        slice(max(rows.min() - box_margin, 0), rows.max() + box_margin + 1),
        slice(max(cols.min() - box_margin, 0), cols.max() + box_margin + 1),
    )


def plot_panel(
    panel: PanelSlices, path: str | os.PathLike, title: str = "", box_margin: int = 4, detail_size: int = 48
) -> Path:
    """HR, LR and every SR slice on one grey scale (top row), |SR − HR| on one scale below, the methods'
    uncertainty maps on a scale of their own when the panel has them (a further row: they are much
    smaller than the errors), and the same slices magnified on a ``detail_size``-voxel square window
    (bottom row, outlined on the HR slice).

    Slices are cropped to the mask's bounding box plus ``box_margin`` voxels (:func:`mask_window`). The grey scale spans
    the HR slice's range; the error scale spans 0 to the 99.5th percentile of the errors inside
    the mask over all methods. The detail window is :func:`detail_window` (the HR's most edged
    window inside the mask) and uses the HR window's grey range. Slices are drawn with their first
    axis left→right and their second axis bottom→top (for a RAS volume: right/anterior/superior
    towards the top-right).
    """
    window = mask_window(panel.mask, box_margin)
    hr = panel.hr[window]
    names = list(panel.sr)
    errors = {name: np.abs(panel.sr[name] - panel.hr)[window] for name in names}
    inside = panel.mask[window]
    emax = float(np.percentile(np.concatenate([e[inside] for e in errors.values()]), 99.5)) if errors else 1.0
    emax = emax if emax > 0 else 1.0
    vmin, vmax = float(hr.min()), float(hr.max())

    columns = 2 + len(names)
    width = 2.8
    height = width * hr.shape[1] / hr.shape[0] * panel.aspect
    detail = detail_window(panel.hr, panel.mask, detail_size)
    detail_hr = panel.hr[detail]
    detail_range = {"vmin": float(detail_hr.min()), "vmax": float(detail_hr.max())}
    uncertain = [name for name in names if name in panel.uncertainty]
    umax = max([float(np.percentile(panel.uncertainty[n][window][inside], 99.5)) for n in uncertain] + [1e-12])
    image_rows = 3 if uncertain else 2
    fig = new_figure(width * columns + 0.9, image_rows * (height + 0.5) + width * panel.aspect + 0.9)
    axes = fig.subplots(
        image_rows + 1, columns, squeeze=False, height_ratios=[height] * image_rows + [width * panel.aspect]
    )
    detail_row = image_rows

    def show(ax: Axes, image: np.ndarray, label: str, **kwargs: object) -> object:
        handle = ax.imshow(image.T, origin="lower", aspect=panel.aspect, interpolation="nearest", **kwargs)
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        return handle

    show(axes[0, 0], hr, "HR", cmap="gray", vmin=vmin, vmax=vmax)
    axes[0, 0].add_patch(
        Rectangle(
            (detail[0].start - window[0].start - 0.5, detail[1].start - window[1].start - 0.5),
            detail[0].stop - detail[0].start,
            detail[1].stop - detail[1].start,
            fill=False,
            edgecolor="tab:orange",
            linewidth=1.0,
        )
    )
    show(axes[0, 1], panel.lr[window], "LR (nearest, for display)", cmap="gray", vmin=vmin, vmax=vmax)
    show(axes[detail_row, 0], detail_hr, "HR, detail", cmap="gray", **detail_range)
    show(axes[detail_row, 1], panel.lr[detail], "LR, detail", cmap="gray", **detail_range)
    error_handle = uncertainty_handle = None
    for column, name in enumerate(names, start=2):
        label = f"{name}\nPSNR {panel.psnr[name]:.2f} dB"
        show(axes[0, column], panel.sr[name][window], label, cmap="gray", vmin=vmin, vmax=vmax)
        error_handle = show(axes[1, column], errors[name], f"|{name} − HR|", cmap="inferno", vmin=0.0, vmax=emax)
        show(axes[detail_row, column], panel.sr[name][detail], f"{name}, detail", cmap="gray", **detail_range)
        if uncertain:
            if name in panel.uncertainty:
                label = f"{name} uncertainty (sd)"
                uncertainty_handle = show(
                    axes[2, column], panel.uncertainty[name][window], label, cmap="magma", vmin=0.0, vmax=umax
                )
            else:
                axes[2, column].axis("off")
    for ax in axes[1:image_rows, :2].ravel():
        ax.axis("off")
    if error_handle is not None:
        fig.colorbar(error_handle, ax=list(axes[1, 2:]), shrink=0.9, label="|error| (HR intensity units)")
    if uncertainty_handle is not None:
        fig.colorbar(uncertainty_handle, ax=list(axes[2, 2:]), shrink=0.9, label="uncertainty, sd (HR units)")
    where = (
        f"scan {panel.scan_id}, {panel.plane} slice {panel.index} across axis {panel.slice_axis}; "
        f"detail: {detail_hr.shape[0]}x{detail_hr.shape[1]} voxels (orange box)"
    )
    fig.suptitle(f"{title} — {where}" if title else where, fontsize=10)
    return save_png(fig, path)
