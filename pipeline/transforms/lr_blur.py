# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Blur, decimate and add noise: the observation model ``L = D S H + e`` of MFCN (the MFCN paper).

``H`` is the HR image, ``S`` a Gaussian PSF whose FWHM equals the LR voxel size, ``D`` the
decimation by an integer zoom ``f`` and ``e`` optional Gaussian or Rician noise.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Randomizable, Transform
from monai.utils import TransformBackends

from pipeline.transforms.lr_common import (
    FWHM_TO_SIGMA,
    downsample_axes,
    finalize_output,
    gaussian_weights,
    image_geometry,
    normalize_axes,
    normalize_zoom,
    prepare_input,
)
from pipeline.deprecation import renamed_to_zoom

__all__ = ["BlurDownsample", "BlurDownsampled", "BlurDownsampleD", "BlurDownsampleDict"]

NOISE_MODELS = (None, "gaussian", "rician")
#: percentile of the noise-free LR intensities used as the "robust max" scaling ``noise_std``.
ROBUST_MAX_PERCENTILE = 99.5


class BlurDownsample(Randomizable, Transform):
    """Gaussian PSF, decimation by an integer zoom and optional noise (the MFCN paper).

    Along each axis in ``axes`` with zoom ``f > 1`` (``n`` HR voxels → ``m = floor(n / f)``
    LR voxels) LR voxel ``j`` is

    .. math::  L_j = \\sum_i w(i - x_j) H_i, \\qquad x_j = (j + 1/2) f - 1/2,

    where ``w`` is a sampled Gaussian of FWHM ``f`` HR voxels (the LR voxel size;
    ``sigma = f / (2 sqrt(2 ln 2))``), truncated at 4 sigma, mirrored at the borders and
    normalised. ``x_j`` is the centre of the block of ``f`` HR voxels that LR voxel ``j``
    replaces — the grid of ``zoomed_affine(affine, 1 / f)``. For odd ``f`` this is exactly
    ``scipy.ndimage.gaussian_filter(H, sigma, mode="reflect")`` taken at the middle voxel of each
    block; for even ``f`` the block centre lies between two voxels and the Gaussian is centred
    exactly there (its samples at half-integer offsets): no interpolation and no extra
    averaging, so the PSF stays a Gaussian of FWHM ``f``. Axes with zoom 1 are neither
    blurred nor decimated.

    Noise (after decimation), with ``sigma_n = noise_std * P99.5(L)`` (robust max of the
    noise-free LR image) and ``n1, n2`` standard normal draws from ``self.R``:
    ``"gaussian"``: ``L + sigma_n n1``; ``"rician"``: ``sqrt((L + sigma_n n1)^2 + (sigma_n n2)^2)``.

    Args:
        zoom: integer decimation (LR spacing / HR spacing, ≥ 1; the SR ratio that undoes it) per axis
            in ``axes``; a scalar applies to all. Default 2.
        axes: degraded spatial axes (0-based, channel excluded; negative allowed); ``None``
            (default) = all spatial axes.
        noise: ``None`` (default), ``"gaussian"`` or ``"rician"``.
        noise_std: noise standard deviation as a fraction of the robust max (≥ 0, default 0.02);
            used only when ``noise`` is set.
        factors: deprecated alias of ``zoom`` (removed in 0.2.0).

    Input: (C, *spatial) array, tensor or ``MetaTensor`` with 2 or 3 spatial dims. Output:
    (C, *lr_spatial) on the LR grid (spacing ``f`` times the input's, affine
    ``zoomed_affine(affine, 1 / f)``); ``meta["degradation"]`` records
    ``method="blur_downsample"``, ``zoom``, ``fwhm_mm``, ``fwhm_voxels`` (HR voxels),
    ``noise``, ``noise_std`` and the absolute ``noise_sigma``.

    Example::

        >>> t = BlurDownsample(2, axes=(0, 1), noise="rician", noise_std=0.01)
        >>> t.set_random_state(seed=0)
        >>> t(hr).shape                                      # hr: (1, 64, 64, 40)
        torch.Size([1, 32, 32, 40])
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    @renamed_to_zoom("factors")
    def __init__(
        self,
        zoom: Sequence[int] | int = 2,
        *,
        axes: Sequence[int] | None = None,
        noise: str | None = None,
        noise_std: float = 0.02,
        factors: Sequence[int] | int | None = None,
    ) -> None:
        if axes is not None:
            normalize_axes(axes, 3)
        zoom = zoom if factors is None else factors
        self.zoom = normalize_zoom(zoom, None if axes is None else len(tuple(axes)), integer=True)
        self.axes = axes
        if noise not in NOISE_MODELS:
            raise ValueError(f"noise must be one of {NOISE_MODELS}, got {noise!r}")
        if not np.isfinite(noise_std) or noise_std < 0:
            raise ValueError(f"noise_std must be a finite fraction >= 0, got {noise_std!r}")
        self.noise = noise
        self.noise_std = float(noise_std)
        self._noise: np.ndarray | None = None

    def randomize(self, data: Sequence[int]) -> None:
        """Draw the standard normal noise field(s) for an output of shape ``data`` (C, *lr_spatial)."""
        count = 2 if self.noise == "rician" else 1
        self._noise = self.R.standard_normal((count, *data)).astype(np.float32)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> torch.Tensor:
        """Degrade ``img`` (C, *spatial); with ``randomize=False`` the last noise draw is reused."""
        img_t, data = prepare_input(img)
        spatial_dims = data.ndim - 1
        axes = normalize_axes(self.axes, spatial_dims)
        zoom = normalize_zoom(self.zoom, len(axes), integer=True)
        out, full = downsample_axes(
            data, axes, zoom, lambda f: (gaussian_weights(f * FWHM_TO_SIGMA), 4 * f * FWHM_TO_SIGMA)
        )
        noise_sigma = 0.0
        if self.noise is not None:
            noise_sigma = self.noise_std * float(np.percentile(out.detach().cpu().numpy(), ROBUST_MAX_PERCENTILE))
            if randomize:
                self.randomize(tuple(out.shape))
            if self._noise is None or self._noise.shape[1:] != tuple(out.shape):
                raise RuntimeError("no noise drawn for this output shape: call with randomize=True first")
            fields = torch.as_tensor(self._noise, device=out.device).to(out.dtype) * noise_sigma
            out = out + fields[0] if self.noise == "gaussian" else torch.sqrt((out + fields[0]) ** 2 + fields[1] ** 2)
        spacing = image_geometry(img_t, spatial_dims)[1]
        return finalize_output(
            out,
            img_t,
            method="blur_downsample",
            axes=axes,
            zoom=full,
            output_grid="lr",
            params={
                "psf": "gaussian",
                "fwhm_voxels": [f if f > 1 else 0.0 for f in full],
                "fwhm_mm": [float(f * s) if f > 1 else 0.0 for f, s in zip(full, spacing)],
                "noise": self.noise or "none",
                "noise_std": self.noise_std if self.noise else 0.0,
                "noise_sigma": noise_sigma,
            },
        )


class BlurDownsampled(Randomizable, MapTransform):
    """Dictionary version of :class:`BlurDownsample`; each key gets its own noise draw.

    Args:
        keys: keys of the images to degrade.
        zoom, axes, noise, noise_std: see :class:`BlurDownsample`.
        allow_missing_keys: don't raise when a key is absent.
        factors: deprecated alias of ``zoom`` (removed in 0.2.0).

    Example::

        >>> t = BlurDownsampled("image", zoom=2, noise="gaussian").set_random_state(seed=0)
        >>> out = t({"image": hr})
    """

    backend = BlurDownsample.backend

    @renamed_to_zoom("factors")
    def __init__(
        self,
        keys: KeysCollection,
        zoom: Sequence[int] | int = 2,
        *,
        axes: Sequence[int] | None = None,
        noise: str | None = None,
        noise_std: float = 0.02,
        allow_missing_keys: bool = False,
        factors: Sequence[int] | int | None = None,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        zoom = zoom if factors is None else factors
        self.blur_downsample = BlurDownsample(zoom, axes=axes, noise=noise, noise_std=noise_std)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> BlurDownsampled:
        super().set_random_state(seed, state)
        self.blur_downsample.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.blur_downsample(d[key])
        return d


BlurDownsampleD = BlurDownsampleDict = BlurDownsampled
