# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Sharpness: mean gradient magnitude inside the brain mask, relative to the HR reference.

A value below 1 means SR is smoother than HR (typical of L1/L2-trained networks and
interpolation); near or above 1 means HR-like (or noisier) edges (typical of GAN-trained
networks). PSNR/SSIM reward smoothness, so this number completes them when GAN and non-GAN
methods are compared. The image is set to 0 outside the mask before differentiating, so voxels
outside the mask do not change the result.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["mean_gradient_magnitude", "relative_sharpness"]


ArrayLike = torch.Tensor | np.ndarray


def _volume_and_mask(image: ArrayLike, mask: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    def squeeze(a: ArrayLike) -> np.ndarray:
        arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        arr = arr[0] if arr.ndim == 4 and arr.shape[0] == 1 else arr
        if arr.ndim != 3:
            raise ValueError(f"expected an (X, Y, Z) or (1, X, Y, Z) volume, got shape {arr.shape}")
        return arr

    vol, m = squeeze(image).astype(np.float64, copy=False), squeeze(mask) > 0
    if vol.shape != m.shape:
        raise ValueError(f"mask shape {m.shape} does not match the image shape {vol.shape}")
    if not m.any():
        raise ValueError("the mask is empty")
    return vol, m


def mean_gradient_magnitude(image: ArrayLike, mask: ArrayLike) -> float:
    """Mean of |∇(image · mask)| over the mask voxels.

    Args:
        image: (X, Y, Z) or (1, X, Y, Z) volume.
        mask: boolean mask of the same spatial shape.

    Returns:
        Intensity units per voxel (central differences inside, one-sided at the volume border).
    """
    vol, m = _volume_and_mask(image, mask)
    squared = sum(g[m] ** 2 for g in np.gradient(vol * m))
    return float(np.sqrt(squared).mean())


def relative_sharpness(sr: ArrayLike, hr: ArrayLike, mask: ArrayLike) -> float:
    """Mean gradient magnitude of SR over that of HR, both inside ``mask`` (dimensionless; HR = 1).

    Args:
        sr, hr: (X, Y, Z) or (1, X, Y, Z) volumes on the same grid.
        mask: boolean brain mask of the same spatial shape.

    Returns:
        The ratio; ``nan`` when HR has no gradient in the mask.
    """
    reference = mean_gradient_magnitude(hr, mask)
    return mean_gradient_magnitude(sr, mask) / reference if reference > 0 else float("nan")
