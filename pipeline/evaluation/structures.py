# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Agreement inside named anatomical structures of a label map: a cheap downstream check with no segmenter.

For each structure of :data:`NAMED_STRUCTURES` (MICCAI 2012 Neuromorphometrics labels, left and right
together), two numbers compare an SR volume with its HR reference:

- ``intensity_error_<structure>_pct``: 100 · (mean SR − mean HR) / mean HR over the structure's voxels;
  partial-volume blur towards neighbouring tissue shows as a bias.
- ``volume_error_<structure>_pct``: the structure's volume as a threshold segmenter would measure it:
  the voxels within :data:`STRUCTURE_MARGIN_VOXELS` of the structure whose intensity lies between the
  5th and 95th percentile of the HR inside it, counted in SR and in HR; 100 · (SR − HR) / HR. A blurred
  boundary grows or shrinks this count as it would grow or shrink a segmented volume.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["NAMED_STRUCTURES", "STRUCTURE_MARGIN_VOXELS", "structure_agreement", "structure_columns"]

NAMED_STRUCTURES: dict[str, tuple[int, ...]] = {
    "hippocampus": (47, 48),
    "thalamus": (59, 60),
    "caudate": (36, 37),
    "putamen": (57, 58),
    "lateral_ventricles": (51, 52),
}
"""Structure name → its (right, left) Neuromorphometrics labels, as in the MALF ``*_glm`` label maps."""

STRUCTURE_MARGIN_VOXELS = 2
_PERCENTILES = (5.0, 95.0)


def structure_columns() -> list[str]:
    """The column names :func:`structure_agreement` returns, in order."""
    return [f"{kind}_error_{name}_pct" for name in NAMED_STRUCTURES for kind in ("intensity", "volume")]


def structure_agreement(sr: np.ndarray, hr: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Intensity and threshold-volume agreement of ``sr`` with ``hr`` in each named structure.

    Args:
        sr, hr: (X, Y, Z) volumes on one grid, in HR intensity units.
        labels: (X, Y, Z) integer Neuromorphometrics label map of the HR.

    Returns:
        :func:`structure_columns` → value (``nan`` for a structure absent from ``labels``).
    """
    if not sr.shape == hr.shape == labels.shape:
        raise ValueError(f"shapes differ: SR {sr.shape}, HR {hr.shape}, labels {labels.shape}")
    columns: dict[str, float] = {}
    for name, ids in NAMED_STRUCTURES.items():
        inside = np.isin(labels, ids)
        if not inside.any():
            columns[f"intensity_error_{name}_pct"] = columns[f"volume_error_{name}_pct"] = float("nan")
            continue
        reference_mean = float(hr[inside].mean())
        columns[f"intensity_error_{name}_pct"] = 100.0 * (float(sr[inside].mean()) - reference_mean) / reference_mean
        low, high = np.percentile(hr[inside], _PERCENTILES)
        near = ndimage.binary_dilation(inside, iterations=STRUCTURE_MARGIN_VOXELS)
        hr_count = int(((hr >= low) & (hr <= high) & near).sum())
        sr_count = int(((sr >= low) & (sr <= high) & near).sum())
        columns[f"volume_error_{name}_pct"] = 100.0 * (sr_count - hr_count) / hr_count
    return columns
