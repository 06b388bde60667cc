# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""k-space truncation: the LR acquisition model of mDCSRN (the mDCSRN paper, after Chen et al. 2018).

The HR image is Fourier transformed, only the central ``1 / f`` of k-space is kept along the
chosen (phase-encoding) axes, and the magnitude of the inverse transform is the LR image. By
default the result stays on the HR matrix (as a scanner's zero-filled reconstruction), or on
request on the LR grid with ``f`` times the spacing.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

from pipeline.transforms.lr_common import (
    apply_along_axis,
    finalize_output,
    lr_centres,
    lr_size,
    normalize_axes,
    normalize_zoom,
    prepare_input,
)
from pipeline.deprecation import renamed_to_zoom

__all__ = [
    "kept_frequencies",
    "kspace_mask",
    "truncate_kspace",
    "outside_energy_ratio",
    "KSpaceTruncation",
    "KSpaceTruncationd",
    "KSpaceTruncationD",
    "KSpaceTruncationDict",
]

OUTPUT_GRIDS = ("hr", "lr")


def kept_frequencies(n: int, zoom: float, *, axis: int = 0) -> np.ndarray:
    """Signed DFT frequencies (cycles per field of view) kept along an axis of ``n`` samples.

    The ``m = floor(n / zoom)`` lowest frequencies are kept: ``-floor(m/2), …, ceil(m/2) - 1``,
    i.e. exactly the frequencies of an ``m``-point DFT (for even ``m`` the unpaired Nyquist
    frequency ``-m/2`` is kept, as a scanner acquiring ``m`` lines does). In ``fftshift`` order
    (zero frequency at index ``n // 2``) these are indices ``n//2 - m//2 … n//2 + (m-1)//2``;
    in the unshifted order of ``torch.fft.fft`` they are the frequencies modulo ``n``. This holds
    for odd and even ``n`` and ``m`` alike.

    Args:
        n: samples along the axis.
        zoom: truncation (LR voxel size / HR voxel size, ≥ 1, need not be whole).
        axis: axis index, only for error messages.

    Returns:
        (m,) int64 array of signed frequencies in increasing order.

    Example::

        >>> kept_frequencies(7, 2)
        array([-1,  0,  1])
    """
    m = lr_size(n, zoom, axis)
    return np.arange(-(m // 2), m - m // 2, dtype=np.int64)


def kspace_mask(shape: Sequence[int], zoom: Sequence[float] | float, axes: Sequence[int]) -> torch.Tensor:
    """Boolean mask of the k-space samples kept by :func:`truncate_kspace`.

    Args:
        shape: spatial shape (X, Y[, Z]) of the HR image.
        zoom: truncation (LR voxel size / HR voxel size) per axis in ``axes`` (a scalar applies to all).
        axes: truncated spatial axes (0-based, channel excluded).

    Returns:
        bool tensor of ``shape`` in the unshifted order of ``torch.fft.fftn`` over the spatial
        axes (apply ``torch.fft.fftshift`` to see the centred block); untouched axes are all True.

    Example::

        >>> kspace_mask((8, 8, 4), (2, 2), (0, 1)).sum().item()
        64
    """
    shape = tuple(int(n) for n in shape)
    axes = normalize_axes(axes, len(shape))
    zoom = normalize_zoom(zoom, len(axes), integer=False)
    mask = torch.ones(shape, dtype=torch.bool)
    for axis, f in zip(axes, zoom):
        keep = torch.zeros(shape[axis], dtype=torch.bool)
        keep[torch.as_tensor(np.mod(kept_frequencies(shape[axis], f, axis=axis), shape[axis]))] = True
        view = [1] * len(shape)
        view[axis] = shape[axis]
        mask = mask & keep.view(view)
    return mask


def truncate_kspace(
    data: torch.Tensor, zoom: Sequence[float] | float, axes: Sequence[int], *, output_grid: str = "hr"
) -> torch.Tensor:
    """Complex image after keeping the central k-space (before the magnitude is taken).

    With ``K = FFT(x)`` along ``axes`` and ``S`` the kept frequencies of each axis
    (:func:`kept_frequencies`) — the FFT over the untouched spatial axes would be undone
    unchanged, so only ``axes`` are transformed:

    - ``output_grid="hr"``: ``IFFT(K · mask)``, same matrix; its k-space is zero outside the
      mask up to rounding.
    - ``output_grid="lr"``: along each truncated axis of ``n`` samples and zoom ``f`` the
      band-limited image is evaluated at the ``m = floor(n / f)`` LR voxel centres
      ``x_j = (j + 1/2) f - 1/2`` (HR voxels; the grid of ``zoomed_affine(affine, 1 / f)``):
      ``y_j = (1/n) Σ_{s∈S} K_s exp(2πi s x_j / n)``. When ``f`` divides ``n`` this is the
      k-space centre cropped to ``m`` samples, multiplied by the half-voxel phase ramp and
      inverse transformed with an ``m``-point DFT, rescaled by ``m / n`` (the number-of-samples
      ratio) so that intensities stay in input units; it also holds for ``f ∤ n`` and
      non-integer ``f``, and the LR spacing is exactly ``f`` times the HR spacing.

    Args:
        data: (C, *spatial) real or complex tensor, 2 or 3 spatial dims.
        zoom: truncation (LR voxel size / HR voxel size, ≥ 1) per axis in ``axes`` (a scalar applies
            to all).
        axes: truncated spatial axes (0-based, channel excluded; negative allowed).
        output_grid: ``"hr"`` or ``"lr"``.

    Returns:
        complex tensor (C, *spatial) on the HR grid, or (C, *lr_spatial) on the LR grid.

    Raises:
        ValueError: bad ``zoom``/``axes``/``output_grid``, or a zoom larger than its axis.
    """
    if output_grid not in OUTPUT_GRIDS:
        raise ValueError(f"output_grid must be one of {OUTPUT_GRIDS}, got {output_grid!r}")
    spatial = tuple(data.shape[1:])
    axes = normalize_axes(axes, len(spatial))
    zoom = normalize_zoom(zoom, len(axes), integer=False)
    dims = [a + 1 for a in axes]
    kspace = torch.fft.fftn(data, dim=dims)
    if output_grid == "hr":
        return torch.fft.ifftn(kspace * kspace_mask(spatial, zoom, axes).to(kspace.device), dim=dims)
    for axis, f in zip(axes, zoom):
        n = spatial[axis]
        freqs = kept_frequencies(n, f, axis=axis)
        kspace = kspace.index_select(axis + 1, torch.as_tensor(np.mod(freqs, n), device=kspace.device))
        centres = lr_centres(len(freqs), f)
        kspace = apply_along_axis(kspace, np.exp(2j * np.pi * np.outer(centres, freqs) / n) / n, axis)
    return kspace


def outside_energy_ratio(image: torch.Tensor, zoom: Sequence[float] | float, axes: Sequence[int]) -> float:
    """Fraction of the k-space energy of ``image`` (C, *spatial) outside :func:`kspace_mask`.

    ``Σ_{k ∉ mask} |FFT(image)_k|² / Σ_k |FFT(image)_k|²`` with the FFT over all spatial axes:
    ≈ 1e-15 for the complex HR-grid result of :func:`truncate_kspace` (rounding only), larger
    for its magnitude, because ``|·|`` is non-linear and widens the spectrum.
    """
    data = torch.as_tensor(image)
    spectrum = torch.fft.fftn(data.to(torch.complex128), dim=list(range(1, data.ndim))).abs() ** 2
    outside = ~kspace_mask(tuple(data.shape[1:]), zoom, axes).to(spectrum.device)
    return float(spectrum[:, outside].sum() / spectrum.sum())


class KSpaceTruncation(Transform):
    """Simulate a low-resolution acquisition by k-space truncation (the mDCSRN paper).

    ``y = | IFFT( FFT(x) · M ) |`` where ``M`` keeps the central ``floor(n / f)`` k-space
    samples along each axis in ``axes`` (the default ``zoom=(2, 2)`` along the two
    phase-encoding axes ``(1, 2)`` keeps a quarter of k-space: "4× fewer samples"). See
    :func:`kept_frequencies` for the exact kept index range with odd and even sizes and
    :func:`truncate_kspace` for the LR-grid evaluation.

    Args:
        zoom: truncation (LR voxel size / HR voxel size, ≥ 1; the SR ratio that undoes it on the LR
            grid) per axis in ``axes``; a scalar applies to all. Default ``(2, 2)``.
        axes: truncated spatial axes (0-based, channel excluded; negative allowed; ``None`` =
            all). Default ``(1, 2)``; pass e.g. ``(0, 1)`` for 2D images.
        output_grid: ``"hr"`` (default): same matrix, spacing and affine as the input (a
            zero-filled reconstruction); ``"lr"``: ``floor(n / f)`` voxels along each truncated
            axis with spacing exactly ``f`` times the input's, affine
            ``zoomed_affine(affine, 1 / f)``, intensities in input units.
        factors: deprecated alias of ``zoom`` (removed in 0.2.0).

    Input: (C, *spatial) array, tensor or ``MetaTensor`` with 2 or 3 spatial dims (real, or
    complex raw data). Output: real magnitude image, a ``MetaTensor`` (when metadata is
    tracked) whose ``meta["degradation"]`` records ``method="kspace_truncation"``, ``zoom``
    (``f`` on truncated axes, 1 elsewhere, for either grid), ``kept_samples`` and
    ``kspace_fraction`` (kept / total samples).

    Note:
        The complex result's k-space is zero outside the kept block (energy fraction ~1e-15,
        :func:`outside_energy_ratio`), but the magnitude is a non-linear operation that puts a
        little energy back outside (2e-4 to 4e-4 of the total for a real 1 mm T1 brain with
        zoom 2×2 to 4, up to ~1.5e-3 for a sharp-edged phantom): the magnitude image is not
        strictly band-limited, as for real magnitude MR images.

    Example::

        >>> lr = KSpaceTruncation((2, 2), axes=(1, 2))(hr)          # (1, 64, 64, 64) → same shape
        >>> lr.meta["degradation"]["zoom"]
        [1.0, 2.0, 2.0]
        >>> KSpaceTruncation(2, axes=(1, 2), output_grid="lr")(hr).shape
        torch.Size([1, 64, 32, 32])
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    @renamed_to_zoom("factors")
    def __init__(
        self,
        zoom: Sequence[float] | float = (2, 2),
        *,
        axes: Sequence[int] | None = (1, 2),
        output_grid: str = "hr",
        factors: Sequence[float] | float | None = None,
    ) -> None:
        if axes is not None:
            normalize_axes(axes, 3)
        zoom = zoom if factors is None else factors
        self.zoom = normalize_zoom(zoom, None if axes is None else len(tuple(axes)), integer=False)
        self.axes = axes
        if output_grid not in OUTPUT_GRIDS:
            raise ValueError(f"output_grid must be one of {OUTPUT_GRIDS}, got {output_grid!r}")
        self.output_grid = output_grid

    def __call__(self, img: NdarrayOrTensor) -> torch.Tensor:
        """Apply the truncation to ``img`` (C, *spatial)."""
        img_t, data = prepare_input(img)
        spatial_dims = data.ndim - 1
        axes = normalize_axes(self.axes, spatial_dims)
        zoom = normalize_zoom(self.zoom, len(axes), integer=False)
        out = truncate_kspace(data, zoom, axes, output_grid=self.output_grid).abs()
        full = [1.0] * spatial_dims
        for axis, f in zip(axes, zoom):
            full[axis] = f
        kept = [len(kept_frequencies(data.shape[1 + a], f, axis=a)) for a, f in zip(axes, zoom)]
        return finalize_output(
            out,
            img_t,
            method="kspace_truncation",
            axes=axes,
            zoom=full,
            output_grid=self.output_grid,
            params={
                "kept_samples": kept,
                "kspace_fraction": float(np.prod(kept) / np.prod([data.shape[1 + a] for a in axes])),
                "magnitude": True,
            },
        )


class KSpaceTruncationd(MapTransform):
    """Dictionary version of :class:`KSpaceTruncation`.

    Args:
        keys: keys of the images to degrade.
        zoom, axes, output_grid: see :class:`KSpaceTruncation`.
        allow_missing_keys: don't raise when a key is absent.
        factors: deprecated alias of ``zoom`` (removed in 0.2.0).

    Example::

        >>> out = KSpaceTruncationd("image", zoom=(2, 2), axes=(1, 2))({"image": hr})
    """

    backend = KSpaceTruncation.backend

    @renamed_to_zoom("factors")
    def __init__(
        self,
        keys: KeysCollection,
        zoom: Sequence[float] | float = (2, 2),
        *,
        axes: Sequence[int] | None = (1, 2),
        output_grid: str = "hr",
        allow_missing_keys: bool = False,
        factors: Sequence[float] | float | None = None,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.truncation = KSpaceTruncation(zoom if factors is None else factors, axes=axes, output_grid=output_grid)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.truncation(d[key])
        return d


KSpaceTruncationD = KSpaceTruncationDict = KSpaceTruncationd
