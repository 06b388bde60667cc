# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Uncertainty from test-time augmentation: the voxel-wise spread of predictions that should agree.

- Through-plane SR already predicts twice, once per orientation of the planes that contain the slice
  axis (:class:`~pipeline.inference.ThroughPlaneSR`): their standard deviation is the map, at no
  extra cost.
- Other networks run again on the input flipped along each upsampled axis, and transposed in-plane
  (a 90° rotation and a flip) when the two upsampled axes have the same zoom; every output is mapped
  back before the spread is taken.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.data import MetaTensor

__all__ = ["augmentations", "tta_members"]

Augmentation = tuple[str, Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]


def augmentations(zoom: Sequence[float]) -> list[Augmentation]:
    """(name, forward, inverse) test-time augmentations of a (1, X, Y, Z) volume that keep ``zoom``.

    Flips along every upsampled axis; with exactly two upsampled axes of equal zoom, also their
    transposition (which with the flips spans the in-plane 90° rotations).
    """
    axes = [a for a, z in enumerate(zoom) if abs(z - 1.0) > 1e-6]
    out: list[Augmentation] = [(f"flip{a}", lambda v, a=a: v.flip(a + 1), lambda v, a=a: v.flip(a + 1)) for a in axes]
    if len(axes) == 2 and abs(zoom[axes[0]] - zoom[axes[1]]) < 1e-6:
        a, b = axes
        out.append((f"transpose{a}{b}", lambda v: v.transpose(a + 1, b + 1), lambda v: v.transpose(a + 1, b + 1)))
    return out


def tta_members(method: Any, lr: MetaTensor, zoom: Sequence[float], sr: MetaTensor) -> tuple[list[torch.Tensor], str]:
    """Predictions whose spread is the uncertainty, and how they were made.

    Args:
        method: the method that made ``sr`` from ``lr`` (its ``last_members`` are used when it has two
            or more, as :class:`~pipeline.inference.ThroughPlaneSR` does; an
            :class:`~pipeline.inference.AdaptedSR` reruns the copy it adapted, ``last_adapted``).
        lr: the input (1, X, Y, Z); zoom: its zoom; sr: the method's output for it.

    Returns:
        ``(members, how)``: (1, X', Y', Z') tensors on the output grid, in the input's units.
    """
    members = list(getattr(method, "last_members", None) or [])
    if len(members) >= 2:
        return members, f"{len(members)} orientations of the planes containing the slice axis"
    runner = getattr(method, "last_adapted", None) or method  # an adapted method reruns its adapted copy
    members = [sr.as_tensor().float()]
    names = []
    for name, forward, inverse in augmentations(zoom):
        augmented = MetaTensor(
            forward(lr.as_tensor()).contiguous(),
            affine=lr.affine,
            meta={k: v for k, v in lr.meta.items() if k != "affine"},
        )
        members.append(inverse(runner(augmented, zoom).as_tensor().float()).contiguous())
        names.append(name)
    return members, "identity + " + ", ".join(names) if names else "identity only (no augmentation keeps this zoom)"
