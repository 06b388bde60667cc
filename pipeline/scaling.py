# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""The intensities networks see: volume / robust maximum, shared by training and inference.

The networks were trained on magnitude MR volumes (background about 0, no large negative values)
divided by :func:`robust_intensity_scale`. Inference keeps exactly that for such volumes. A volume
with substantial negative values (z-scored, CT-like, or shifted by an offset) is first shifted by
its robust minimum (:func:`robust_intensity_shift`) so that it looks like a magnitude volume to
the network; the shift is undone on the output, which comes back in the input's units.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "ROBUST_MAX_PERCENTILE",
    "ROBUST_MIN_PERCENTILE",
    "RINGING_TOLERANCE",
    "robust_intensity_scale",
    "robust_intensity_shift",
    "network_intensity_mapping",
]

ROBUST_MAX_PERCENTILE = 99.5
ROBUST_MIN_PERCENTILE = 100.0 - ROBUST_MAX_PERCENTILE
# Negative values down to this fraction of the robust range are ringing of a magnitude volume, not
# an offset: bicubic downsampling of skull-stripped T1 scans undershoots to about 2 % of the
# range at the 0.5th percentile; z-scored brains reach 18-70 %.
RINGING_TOLERANCE = 0.05


def _as_numpy(volume: torch.Tensor | np.ndarray) -> np.ndarray:
    return volume.detach().cpu().numpy() if isinstance(volume, torch.Tensor) else np.asarray(volume)


def robust_intensity_scale(volume: torch.Tensor | np.ndarray, percentile: float = ROBUST_MAX_PERCENTILE) -> float:
    """The ``percentile``-th percentile of the positive voxels (1.0 if there are none).

    Dividing by it maps brain tissue to about [0, 1] whatever the scanner's units, keeps zero
    background at zero, and is insensitive to a few hot voxels. Multiplying the network output
    by the same number returns it to the input's units.
    """
    arr = _as_numpy(volume)
    positive = arr[arr > 0]
    if positive.size == 0:
        return 1.0
    value = float(np.percentile(positive, percentile))
    return value if value > 0 else 1.0


def robust_intensity_shift(volume: torch.Tensor | np.ndarray, tolerance: float = RINGING_TOLERANCE) -> float:
    """The offset to subtract so that ``volume`` looks like a magnitude MR volume: 0.0 for those.

    Returns:
        0.0 when the robust minimum (``ROBUST_MIN_PERCENTILE``-th percentile of all voxels) is at
        least ``-tolerance`` times the robust range (robust maximum − robust minimum): a
        magnitude volume, possibly with interpolation ringing, left exactly as in training.
        Otherwise the robust minimum itself (negative), which moves the volume's floor to 0.
    """
    arr = _as_numpy(volume)
    low, high = np.percentile(arr, [ROBUST_MIN_PERCENTILE, ROBUST_MAX_PERCENTILE])
    if low >= -tolerance * (high - low):
        return 0.0
    return float(low)


def network_intensity_mapping(volume: torch.Tensor | np.ndarray) -> tuple[float, float]:
    """``(shift, scale)``: the network sees ``(volume - shift) / scale``; outputs map back by ``· scale + shift``.

    ``shift`` is :func:`robust_intensity_shift` (0.0 for magnitude volumes, whose network input is
    then exactly ``volume / robust_intensity_scale(volume)`` as in training) and ``scale`` is
    :func:`robust_intensity_scale` of the shifted volume.
    """
    shift = robust_intensity_shift(volume)
    arr = _as_numpy(volume)
    return shift, robust_intensity_scale(arr - shift if shift else arr)
