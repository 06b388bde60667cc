# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Uncertainty from test-time augmentation: the voxel-wise spread of predictions that should agree.

- Through-plane SR (:class:`~pipeline.inference.ThroughPlaneSR`) predicts once per orientation of the
  planes that contain the slice axis. It runs again on the input flipped along the slice axis, along
  both in-plane axes, and along all three; the two orientations of each run are members (8 in all).
  A method with ``self_ensemble`` already averaged those 8 into its output: its own members are used.
- Other networks run again on the input flipped along each upsampled axis, and transposed in-plane
  (a 90° rotation and a flip) when the two upsampled axes have the same zoom.

Every member is mapped back before the spread is taken. The map is the standard deviation of the
members, its variance pooled over a Gaussian neighbourhood of :data:`POOLING_SIGMA_VOXELS` output
voxels (a handful of members gives a noisy variance per voxel; pooling it raised the Spearman
correlation of the map with ``|SR - HR|`` from 0.26-0.28 to 0.29-0.31 on the two ``val`` scans of
``thick_slice`` under ``thick-4mm``, and from 0.20-0.21 to 0.27-0.29 for the two orientations alone).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from scipy.ndimage import gaussian_filter

from pipeline.inference.through_plane import through_plane_flips

__all__ = ["POOLING_SIGMA_VOXELS", "augmentations", "tta_members", "uncertainty_map"]

POOLING_SIGMA_VOXELS = 1.0
"""Standard deviation (output voxels) of the Gaussian that pools the members' variance."""

Augmentation = tuple[str, Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]


def _flip(name: str, axes: Sequence[int]) -> Augmentation:
    dims = [a + 1 for a in axes]  # (1, X, Y, Z): spatial axis a is tensor dim a + 1
    return name, lambda v: v.flip(dims), lambda v: v.flip(dims)


def augmentations(zoom: Sequence[float], through_plane: bool = False) -> list[Augmentation]:
    """(name, forward, inverse) test-time augmentations of a (1, X, Y, Z) volume that keep ``zoom``.

    Args:
        zoom: the zoom per spatial axis.
        through_plane: augmentations for a through-plane method (exactly one axis zoomed, the slice
            axis ``t``): flips along ``t``, along both in-plane axes, and along all three. A flip along
            one in-plane axis alone would only reorder one orientation's planes.

    Otherwise: flips along every upsampled axis; with exactly two upsampled axes of equal zoom, also
    their transposition (which with the flips spans the in-plane 90° rotations).
    """
    if through_plane:
        return [_flip(name, flipped) for name, flipped in through_plane_flips(_zoomed_axis(zoom))]
    axes = [a for a, z in enumerate(zoom) if abs(z - 1.0) > 1e-6]
    out = [_flip(f"flip{a}", [a]) for a in axes]
    if len(axes) == 2 and abs(zoom[axes[0]] - zoom[axes[1]]) < 1e-6:
        a, b = axes
        out.append((f"transpose{a}{b}", lambda v: v.transpose(a + 1, b + 1), lambda v: v.transpose(a + 1, b + 1)))
    return out


def tta_members(method: Any, lr: MetaTensor, zoom: Sequence[float], sr: MetaTensor) -> tuple[list[torch.Tensor], str]:
    """Predictions whose spread is the uncertainty, and how they were made.

    Args:
        method: the method that made ``sr`` from ``lr`` (a method whose ``last_members`` has two or more
            entries is taken as through-plane: its members are kept and rerun under
            :func:`augmentations` ``(through_plane=True)``, unless its ``self_ensemble`` already ran
            them; an :class:`~pipeline.inference.AdaptedSR` reruns the copy it adapted, ``last_adapted``).
        lr: the input (1, X, Y, Z); zoom: its zoom; sr: the method's output for it.

    Returns:
        ``(members, how)``: (1, X', Y', Z') tensors on the output grid, in the input's units.
    """
    own = [m.float() for m in (getattr(method, "last_members", None) or [])]
    through_plane = len(own) >= 2
    if through_plane and getattr(method, "self_ensemble", False):
        flips = ", ".join(name for name, _ in through_plane_flips(_zoomed_axis(zoom)))
        orientations = len(own) // 4
        how = f"{orientations} orientations of the planes containing the slice axis x (identity, {flips})"
        return own, f"{how}: the output's own self-ensemble ({len(own)} members)"
    runner = getattr(method, "last_adapted", None) or method  # an adapted method reruns its adapted copy
    members = list(own) if through_plane else [sr.as_tensor().float()]
    names = []
    for name, forward, inverse in augmentations(zoom, through_plane=through_plane):
        augmented = MetaTensor(
            forward(lr.as_tensor()).contiguous(),
            affine=lr.affine,
            meta={k: v for k, v in lr.meta.items() if k != "affine"},
        )
        output = runner(augmented, zoom).as_tensor().float()
        outputs = [m.float() for m in runner.last_members] if through_plane else [output]
        members.extend(inverse(o).contiguous() for o in outputs)
        names.append(name)
    if through_plane:
        runner.last_members = own  # the reruns replaced them; they describe ``sr`` again
    first = f"{len(own)} orientations of the planes containing the slice axis" if through_plane else "identity"
    if not names:
        return members, f"{first} only (no augmentation keeps this zoom)"
    per_run = f", each orientation per run ({len(members)} members)" if through_plane else ""
    return members, f"{first} x (identity, {', '.join(names)}){per_run}"


def _zoomed_axis(zoom: Sequence[float]) -> int:
    """The one axis a through-plane zoom upsamples."""
    axes = [a for a, z in enumerate(zoom) if abs(z - 1.0) > 1e-6]
    if len(axes) != 1:
        raise ValueError(f"through-plane augmentations need exactly one zoomed axis, got zoom {tuple(zoom)}")
    return axes[0]


def uncertainty_map(members: Sequence[torch.Tensor], sigma: float = POOLING_SIGMA_VOXELS) -> torch.Tensor:
    """The members' voxel-wise standard deviation, its variance pooled by a Gaussian of ``sigma`` voxels.

    Args:
        members: (1, X, Y, Z) predictions on the same grid.
        sigma: pooling width (output voxels); 0 gives the plain standard deviation.

    Returns:
        (1, X, Y, Z) float32 tensor, in the members' units.
    """
    variance = torch.stack([m.float() for m in members]).var(dim=0, unbiased=False).numpy()
    if sigma > 0:
        variance = gaussian_filter(variance, sigma=(0, sigma, sigma, sigma), mode="nearest")
    return torch.from_numpy(np.sqrt(np.maximum(variance, 0.0)).astype(np.float32))
