# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Image-quality metrics between an SR volume and its HR reference, inside a brain mask.

All functions take volumes of shape (X, Y, Z) or (1, X, Y, Z) (``torch.Tensor``, ``MetaTensor``
or NumPy array) on the same grid, and a boolean mask of the same spatial shape. Intensities are
in the HR volume's units; ``data_range`` is in those units too (see :func:`data_range`).

- PSNR (dB) = 10·log10(L² / MSE), the MSE taken over mask voxels, L the data range.
- SSIM: the per-voxel SSIM map of Wang et al. (2004) with a Gaussian window (11 voxels,
  σ = 1.5 voxels, K1 = 0.01, K2 = 0.03) as in MONAI's
  :func:`monai.metrics.regression.compute_ssim_and_cs` (a "valid" convolution: the map is 10
  voxels shorter along each axis), computed here with a separable Gaussian (same numbers, 2-3x
  faster on CPU), of SR and HR set to 0 outside the mask (so that, as for PSNR and NRMSE,
  voxels outside the mask do not change the result), averaged over the mask voxels that are
  window centres (at least 5 voxels from the border).
- NRMSE = ‖SR − HR‖₂ / ‖HR‖₂ over mask voxels (dimensionless).
- Slice-wise versions: the same metrics per 2D slice across ``slice_axis`` (2D SSIM), averaged
  over slices with enough brain, with the volume's data range (as the mDCSRN paper reports).

Example::

    >>> L = data_range(hr, mask)
    >>> psnr(sr, hr, mask, L), ssim(sr, hr, mask, L), nrmse(sr, hr, mask)
    >>> slicewise_metrics(sr, hr, mask, L, slice_axis=0)["psnr_slice"]
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "SSIM_KERNEL_SIZE",
    "SSIM_KERNEL_SIGMA",
    "data_range",
    "psnr",
    "psnr_of_values",
    "ssim",
    "ssim_map",
    "nrmse",
    "slicewise_metrics",
]

SSIM_KERNEL_SIZE = 11
SSIM_KERNEL_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03

ArrayLike = torch.Tensor | np.ndarray


def _as_numpy(image: ArrayLike, ndim: int = 3) -> np.ndarray:
    """(1, *S) or (*S) → float64 array of shape S with ``ndim`` axes."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim == ndim + 1 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != ndim:
        raise ValueError(f"expected an image of shape S or (1, *S) with {ndim} spatial axes, got shape {arr.shape}")
    return arr.astype(np.float64, copy=False)


def _as_mask(mask: ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    arr = _as_numpy(mask, len(shape)) > 0
    if arr.shape != shape:
        raise ValueError(f"mask shape {arr.shape} does not match the image shape {shape}")
    if not arr.any():
        raise ValueError("the mask is empty")
    return arr


def _prepare(sr: ArrayLike, hr: ArrayLike, mask: ArrayLike, ndim: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sr_arr, hr_arr = _as_numpy(sr, ndim), _as_numpy(hr, ndim)
    if sr_arr.shape != hr_arr.shape:
        raise ValueError(f"SR shape {sr_arr.shape} does not match HR shape {hr_arr.shape} (metrics need the same grid)")
    return sr_arr, hr_arr, _as_mask(mask, hr_arr.shape)


def data_range(hr: ArrayLike, mask: ArrayLike) -> float:
    """The data range L used by PSNR and SSIM: max − min of the HR intensities inside the mask.

    Args:
        hr: (X, Y, Z) or (1, X, Y, Z) reference volume.
        mask: boolean brain mask of shape (X, Y, Z) or (1, X, Y, Z).

    Returns:
        L in the HR volume's intensity units.
    """
    hr_arr = _as_numpy(hr)
    values = hr_arr[_as_mask(mask, hr_arr.shape)]
    return float(values.max() - values.min())


def psnr_of_values(sr_values: np.ndarray, hr_values: np.ndarray, data_range: float) -> float:
    """The project's one PSNR (dB): 10·log10(L² / MSE) over the given voxel values; ``inf`` when they agree.

    :func:`psnr` (evaluation) and :func:`pipeline.training.metrics.masked_psnr` (validation) both
    select the voxels in the mask and call this.

    Args:
        sr_values, hr_values: 1-D arrays of the same length, the voxels inside the mask.
        data_range: L, in intensity units (see :func:`data_range`), > 0.
    """
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range} (constant HR inside the mask?)")
    mse = float(np.mean((np.asarray(sr_values, dtype=np.float64) - np.asarray(hr_values, dtype=np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def psnr(sr: ArrayLike, hr: ArrayLike, mask: ArrayLike, data_range: float) -> float:
    """Peak signal-to-noise ratio (dB) over the mask (:func:`psnr_of_values`); ``inf`` when SR == HR there.

    Args:
        sr, hr: (X, Y, Z) or (1, X, Y, Z) volumes on the same grid.
        mask: boolean mask of the same spatial shape; only its voxels count.
        data_range: L, in intensity units (see :func:`data_range`).
    """
    sr_arr, hr_arr, m = _prepare(sr, hr, mask)
    return psnr_of_values(sr_arr[m], hr_arr[m], data_range)


def nrmse(sr: ArrayLike, hr: ArrayLike, mask: ArrayLike) -> float:
    """Normalised root-mean-square error ‖SR − HR‖₂ / ‖HR‖₂ over the mask (dimensionless).

    Returns ``nan`` when HR is zero everywhere in the mask.
    """
    sr_arr, hr_arr, m = _prepare(sr, hr, mask)
    norm = float(np.linalg.norm(hr_arr[m]))
    return float(np.linalg.norm(sr_arr[m] - hr_arr[m]) / norm) if norm > 0 else float("nan")


def _gaussian_1d(size: int, sigma: float) -> torch.Tensor:
    """The normalised 1D Gaussian of MONAI's SSIM (taps at integer offsets from the centre)."""
    dist = torch.arange((1 - size) / 2, (1 + size) / 2, 1.0)
    gauss = torch.exp(-((dist / sigma) ** 2) / 2)
    return gauss / gauss.sum()


def ssim_map(sr: torch.Tensor, hr: torch.Tensor, data_range: float, spatial_dims: int = 3) -> torch.Tensor:
    """The SSIM map of a batch, with MONAI's Gaussian-window definition, by separable convolution.

    Args:
        sr, hr: float tensors of shape (B, 1, *S) with ``spatial_dims`` spatial axes.
        data_range: L, in intensity units.
        spatial_dims: 2 or 3.

    Returns:
        (B, *S') float32 map with S' = S − 10 per axis: entry ``i`` is the SSIM of the window
        centred on input voxel ``i + 5``. Equals :func:`monai.metrics.regression.compute_ssim_and_cs`
        (kernel 11, σ 1.5) up to float32 rounding (the separable form rounds less: its mean is
        closer to a float64 computation).
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    if sr.shape != hr.shape or sr.ndim != spatial_dims + 2 or sr.shape[1] != 1:
        raise ValueError(
            f"expected two (B, 1, *S) tensors with {spatial_dims} spatial axes, "
            f"got {tuple(sr.shape)} and {tuple(hr.shape)}"
        )
    if min(sr.shape[2:]) < SSIM_KERNEL_SIZE:
        raise ValueError(f"SSIM needs at least {SSIM_KERNEL_SIZE} voxels along each axis, got {tuple(sr.shape[2:])}")
    x, y = sr.float(), hr.float()
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (B, 5, *S): the five local moments
    gauss = _gaussian_1d(SSIM_KERNEL_SIZE, SSIM_KERNEL_SIGMA).to(stack.device)
    conv = F.conv2d if spatial_dims == 2 else F.conv3d
    for axis in range(spatial_dims):
        shape = [5, 1] + [1] * spatial_dims
        shape[2 + axis] = SSIM_KERNEL_SIZE
        stack = conv(stack, gauss.reshape([1, 1] + shape[2:]).expand(shape), groups=5)
    mu_x, mu_y, mu_xx, mu_yy, mu_xy = stack.unbind(dim=1)
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    sigma_x, sigma_y, sigma_xy = mu_xx - mu_x * mu_x, mu_yy - mu_y * mu_y, mu_xy - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)) * ((2 * sigma_xy + c2) / (sigma_x + sigma_y + c2))


def _crop_to_map(mask: np.ndarray, spatial_dims: int) -> np.ndarray:
    """Align a (…, *S) mask with a valid-convolution SSIM map: drop 5 voxels at each end of the S axes."""
    half = SSIM_KERNEL_SIZE // 2
    return mask[(Ellipsis, *[slice(half, n - half) for n in mask.shape[-spatial_dims:]])]


def ssim(sr: ArrayLike, hr: ArrayLike, mask: ArrayLike, data_range: float, spatial_dims: int = 3) -> float:
    """Mean SSIM over the mask voxels of the SSIM map (see :func:`ssim_map`) of the masked images.

    SR and HR are set to 0 outside the mask first, so only mask voxels enter the windows.

    Args:
        sr, hr: volumes of shape (*S) or (1, *S) with ``spatial_dims`` (2 or 3) spatial axes.
        mask: boolean mask of shape S; voxels within 5 of the border are not window centres.
        data_range: L, in intensity units (see :func:`data_range`).
        spatial_dims: 2 or 3.

    Returns:
        Mean SSIM in [-1, 1] (1 when SR == HR); ``nan`` when no mask voxel is a window centre.
    """
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    sr_arr, hr_arr, m = _prepare(sr, hr, mask, spatial_dims)
    ssim_values = ssim_map(
        torch.from_numpy(sr_arr * m)[None, None], torch.from_numpy(hr_arr * m)[None, None], data_range, spatial_dims
    )[0].numpy()
    inside = _crop_to_map(m, spatial_dims)
    return float(ssim_values[inside].mean()) if inside.any() else float("nan")


def slicewise_metrics(
    sr: ArrayLike,
    hr: ArrayLike,
    mask: ArrayLike,
    data_range: float,
    slice_axis: int,
    min_mask_fraction: float = 0.05,
) -> dict[str, float]:
    """PSNR, SSIM and NRMSE per 2D slice across ``slice_axis``, averaged over slices with enough brain.

    Args:
        sr, hr: (X, Y, Z) or (1, X, Y, Z) volumes on the same grid.
        mask: boolean brain mask of shape (X, Y, Z).
        data_range: L (intensity units) of the whole volume, used for every slice.
        slice_axis: spatial axis (0, 1 or 2) to slice across; pick the one whose slices contain
            the degraded axes (``Protocol.slice_axis``).
        min_mask_fraction: a slice counts when at least this fraction of its voxels (and at least
            one voxel) is in the mask.

    Returns:
        ``{"psnr_slice", "ssim_slice", "nrmse_slice", "n_slices"}``: means over the counted
        slices (PSNR in dB; ``inf`` when a counted slice is identical), and their number. SSIM
        is that of :func:`ssim` in 2D (masked images); its mean skips slices whose mask lies
        entirely within 5 voxels of the slice border. The means are ``nan`` when no slice counts.
    """
    if slice_axis not in (0, 1, 2):
        raise ValueError(f"slice_axis must be 0, 1 or 2, got {slice_axis}")
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    sr_arr, hr_arr, m = (np.moveaxis(a, slice_axis, 0) for a in _prepare(sr, hr, mask))
    fraction = m.reshape(m.shape[0], -1).mean(axis=1)
    keep = (fraction >= min_mask_fraction) & (fraction > 0)
    if not keep.any():
        nan = float("nan")
        return {"psnr_slice": nan, "ssim_slice": nan, "nrmse_slice": nan, "n_slices": 0}
    sr_arr, hr_arr, m = sr_arr[keep], hr_arr[keep], m[keep]
    diff2 = np.where(m, (sr_arr - hr_arr) ** 2, 0.0).sum(axis=(1, 2))
    hr2 = np.where(m, hr_arr**2, 0.0).sum(axis=(1, 2))
    psnrs = [psnr_of_values(s[k], h[k], data_range) for s, h, k in zip(sr_arr, hr_arr, m)]
    nrmses = np.sqrt(diff2[hr2 > 0] / hr2[hr2 > 0])
    maps = ssim_map(torch.from_numpy(sr_arr * m)[:, None], torch.from_numpy(hr_arr * m)[:, None], data_range, 2).numpy()
    inside = _crop_to_map(m, 2)
    ssims = [float(s[i].mean()) for s, i in zip(maps, inside) if i.any()]
    return {
        "psnr_slice": float(np.mean(psnrs)),
        "ssim_slice": float(np.mean(ssims)) if ssims else float("nan"),
        "nrmse_slice": float(np.mean(nrmses)) if nrmses.size else float("nan"),
        "n_slices": int(keep.sum()),
    }
