# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""The QC figure of an SR output: three orthogonal views of cubic B-spline, the SR and its uncertainty."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline.io.atomic import atomic_path

__all__ = ["plot_qc_views", "plane_names"]

_PLANES = {"L": "sagittal", "R": "sagittal", "A": "coronal", "P": "coronal", "S": "axial", "I": "axial"}


def plane_names(affine: np.ndarray) -> list[str]:
    """The anatomical plane of the slices across each voxel axis of a volume with this (4, 4) affine."""
    return [_PLANES.get(code, "oblique") for code in nib.orientations.aff2axcodes(np.asarray(affine, dtype=float))]


def _views(volume: np.ndarray, centre: tuple[int, int, int]) -> list[np.ndarray]:
    """The three slices through ``centre``, each transposed so that its second voxel axis runs upwards."""
    return [np.take(volume, centre[axis], axis=axis).T for axis in range(3)]


def plot_qc_views(
    cubic: np.ndarray,
    sr: np.ndarray,
    uncertainty: np.ndarray,
    mask: np.ndarray,
    spacing: tuple[float, float, float],
    path: str | os.PathLike,
    title: str,
    planes: list[str] | None = None,
) -> None:
    """Save a 3 x 3 PNG: rows cubic / SR / uncertainty, columns the planes across voxel axes 0, 1, 2.

    Args:
        cubic, sr, uncertainty: (X, Y, Z) volumes on the output grid (input units).
        mask: (X, Y, Z) boolean mask whose centroid the views pass through; it also sets the grey
            range (1st-99.5th percentile of the SR inside it).
        spacing: output voxel spacing (mm), for true aspect ratios.
        path: the PNG, written atomically.
        title: figure title (file name, method, QC figures).
        planes: the anatomical plane across each voxel axis (:func:`plane_names`), for the column titles.
    """
    centre = tuple(int(round(c)) for c in (np.argwhere(mask).mean(axis=0) if mask.any() else np.array(sr.shape) / 2))
    inside = sr[mask] if mask.any() else sr.ravel()
    low, high = np.percentile(inside, [1, 99.5])
    u_high = float(np.percentile(uncertainty[mask] if mask.any() else uncertainty, 99.5)) or 1.0
    fig = Figure(figsize=(10, 9.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 3)
    rows = [
        ("cubic B-spline", cubic, "gray", (low, high)),
        ("SR", sr, "gray", (low, high)),
        ("uncertainty (sd)", uncertainty, "magma", (0, u_high)),
    ]
    for r, (label, volume, cmap, (vmin, vmax)) in enumerate(rows):
        for axis, view in enumerate(_views(volume, centre)):
            first, second = (a for a in range(3) if a != axis)
            ax = axes[r, axis]
            image = ax.imshow(
                view,
                cmap=cmap,
                vmin=vmin,
                vmax=vmax,
                origin="lower",
                aspect=spacing[second] / spacing[first],
                interpolation="nearest",
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if axis == 0:
                ax.set_ylabel(label)
            if r == 0:
                plane = f"{planes[axis]} " if planes else ""
                ax.set_title(f"{plane}slice {centre[axis]} across voxel axis {axis}", fontsize=9)
        if r == 2:
            fig.colorbar(image, ax=axes[r, :].tolist(), shrink=0.8, label="sd, input units")
    fig.suptitle(title, fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
