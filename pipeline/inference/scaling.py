# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""The intensity scale networks see: volume / robust maximum, shared by training and inference."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["ROBUST_MAX_PERCENTILE", "robust_intensity_scale"]

ROBUST_MAX_PERCENTILE = 99.5


def robust_intensity_scale(volume: torch.Tensor | np.ndarray, percentile: float = ROBUST_MAX_PERCENTILE) -> float:
    """The ``percentile``-th percentile of the positive voxels (1.0 if there are none).

    Dividing by it maps brain tissue to about [0, 1] whatever the scanner's units, keeps zero
    background at zero, and is insensitive to a few hot voxels. Multiplying the network output
    by the same number returns it to the input's units.
    """
    arr = volume.detach().cpu().numpy() if isinstance(volume, torch.Tensor) else np.asarray(volume)
    positive = arr[arr > 0]
    if positive.size == 0:
        return 1.0
    value = float(np.percentile(positive, percentile))
    return value if value > 0 else 1.0
