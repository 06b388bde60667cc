# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Interpolation onto a zoomed grid: the non-learned baselines and the input step of SR networks.

The output grid covers the input's field of view (see :mod:`pipeline.transforms.grid`): output
voxel ``i`` samples input voxel coordinate ``(i + 0.5) / z - 0.5``. SciPy's ``ndimage.zoom``
with ``grid_mode=True`` implements exactly this; its ``order=3`` is the cubic B-spline
(with the spline pre-filter), ``order=1`` linear, ``order=0`` nearest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from scipy import ndimage

from pipeline.transforms.grid import zoomed_affine, zoomed_shape

__all__ = ["INTERPOLATION_ORDERS", "interpolate_array", "interpolate_volume"]

INTERPOLATION_ORDERS = {"nearest": 0, "linear": 1, "cubic": 3}


def interpolate_array(volume: np.ndarray, zoom: Sequence[float], order: int) -> np.ndarray:
    """Resample a (X, Y, Z) array onto the grid zoomed by ``zoom`` with a spline of ``order``.

    Returns:
        float32 array of shape ``zoomed_shape(volume.shape, zoom)``.
    """
    if order not in (0, 1, 3):
        raise ValueError(f"order must be 0 (nearest), 1 (linear) or 3 (cubic B-spline), got {order}")
    out_shape = zoomed_shape(volume.shape, zoom)
    actual = [o / n for o, n in zip(out_shape, volume.shape)]
    if all(a == 1.0 for a in actual):
        return volume.astype(np.float32, copy=True)
    return ndimage.zoom(
        volume.astype(np.float32, copy=False), actual, order=order, mode="reflect", grid_mode=True, prefilter=order > 1
    ).astype(np.float32, copy=False)


def interpolate_volume(image: MetaTensor, zoom: Sequence[float], order: int) -> MetaTensor:
    """Interpolate a (1, X, Y, Z) ``MetaTensor`` onto the zoomed grid; the affine follows the grid.

    Args:
        image: channel-first volume with a voxel-to-world affine.
        zoom: output voxels per input voxel along each spatial axis (2 = spacing halved).
        order: 0 nearest, 1 linear, 3 cubic B-spline.

    Returns:
        (1, X', Y', Z') float32 ``MetaTensor`` on the zoomed grid, meta copied from ``image``
        with ``affine`` and ``spatial_shape`` updated.
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"expected a (1, X, Y, Z) volume, got shape {tuple(image.shape)}")
    data = image[0].detach().cpu().numpy()
    out = interpolate_array(data, zoom, order)
    actual = [o / n for o, n in zip(out.shape, data.shape)]
    meta = {k: v for k, v in image.meta.items() if k != "affine"}
    meta["spatial_shape"] = np.asarray(out.shape)
    return MetaTensor(torch.from_numpy(out)[None], affine=torch.as_tensor(zoomed_affine(image.affine, actual)), meta=meta)
