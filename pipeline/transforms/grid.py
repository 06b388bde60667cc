# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Voxel-grid geometry shared by every transform and method that changes the sampling grid.

Conventions: affines are 4x4 voxel-to-world matrices (MONAI keeps them in RAS mm); voxel
coordinates index voxel centres. A grid is *zoomed* by ``z`` along an axis when it has ``z``
times as many voxels there (``z = 2``: spacing halved; ``z = 0.5``: spacing doubled). The new
grid covers the same field of view: its voxels tile the old voxels' extent exactly, so voxel 0
of the new grid has its centre at old voxel coordinate ``(1 / z - 1) / 2`` (the half-voxel
shift).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch

__all__ = [
    "as_numpy_affine",
    "spacing_from_affine",
    "zoomed_affine",
    "voxel_to_world",
    "zoomed_shape",
    "zoom_divisor",
    "integer_zoom",
]


def as_numpy_affine(affine: np.ndarray | torch.Tensor) -> np.ndarray:
    """Return ``affine`` as a float64 (4, 4) NumPy array."""
    arr = affine.detach().cpu().numpy() if isinstance(affine, torch.Tensor) else np.asarray(affine)
    arr = arr.astype(np.float64)
    if arr.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got shape {arr.shape}")
    return arr


def spacing_from_affine(affine: np.ndarray | torch.Tensor) -> np.ndarray:
    """Voxel spacing in mm along each of the three voxel axes, shape (3,)."""
    return np.linalg.norm(as_numpy_affine(affine)[:3, :3], axis=0)


def zoomed_affine(affine: np.ndarray | torch.Tensor, zoom: Sequence[float] | float) -> np.ndarray:
    """Affine of the grid zoomed by ``zoom`` (per axis) covering the same field of view.

    Args:
        affine: (4, 4) voxel-to-world matrix of the input grid.
        zoom: output voxels per input voxel along each voxel axis (2 = twice as many voxels,
            spacing halved; 0.25 = spacing ×4). A scalar applies to all three axes.

    Returns:
        (4, 4) float64 affine: spacing divided by ``zoom``, direction kept, origin moved by the
        half-voxel shift ``(1 / zoom - 1) / 2`` input voxels.

    Example::

        >>> zoomed_affine(np.eye(4), [2, 2, 1])[:3, 3]
        array([-0.25, -0.25,  0.  ])
    """
    base = as_numpy_affine(affine)
    z = np.broadcast_to(np.asarray(zoom, dtype=np.float64), (3,))
    if np.any(z <= 0):
        raise ValueError(f"zoom factors must be positive, got {tuple(z)}")
    step = 1.0 / z
    voxel_map = np.eye(4)
    voxel_map[:3, :3] = np.diag(step)
    voxel_map[:3, 3] = (step - 1.0) / 2.0
    return base @ voxel_map


def zoomed_shape(shape: Sequence[int], zoom: Sequence[float] | float) -> tuple[int, ...]:
    """Spatial shape of a grid zoomed by ``zoom``: ``floor(n * z)`` voxels (at least 1) per axis."""
    z = np.broadcast_to(np.asarray(zoom, dtype=np.float64), (len(shape),))
    return tuple(max(1, int(np.floor(n * f + 1e-6))) for n, f in zip(shape, z))


def voxel_to_world(affine: np.ndarray | torch.Tensor, ijk: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Map voxel coordinates (N, 3) to world coordinates (N, 3) in mm."""
    pts = np.atleast_2d(np.asarray(ijk, dtype=np.float64))
    aff = as_numpy_affine(affine)
    return pts @ aff[:3, :3].T + aff[:3, 3]


def integer_zoom(zoom: Sequence[float], user: str) -> tuple[int, ...]:
    """``zoom`` as whole numbers (each ≥ 1), for ``user`` (named in the error) that needs an integer zoom.

    Raises:
        ValueError: a zoom is below 1 or not within 1e-6 of a whole number.
    """
    rounded = tuple(int(round(z)) for z in zoom)
    if any(r < 1 or abs(r - z) > 1e-6 for r, z in zip(rounded, zoom)):
        raise ValueError(f"{user} needs an integer zoom >= 1 per axis, got {tuple(float(z) for z in zoom)}")
    return rounded


def zoom_divisor(zoom: Sequence[float]) -> list[int]:
    """Per axis, the smallest number of HR voxels that spans a whole number of LR voxels.

    The numerator ``p`` of the zoom written as a fraction ``p / q`` (denominator at most 64): 2 for a
    zoom of 2, 9 for 4.5 (9 HR voxels = 2 LR voxels), 1 for a zoom of 1 or below.
    """
    divisors = []
    for z in zoom:
        fraction = Fraction(float(z)).limit_denominator(64)
        close = abs(float(fraction) - float(z)) < 1e-6 * max(1.0, float(z))
        divisors.append(fraction.numerator if close and z >= 1 else 1)
    return divisors
