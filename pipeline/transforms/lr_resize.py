# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Antialiased bicubic downsampling: the "bicubic" LR images of RRLSRN (the RRLSRN paper), MRLNet
(the MRLNet paper) and MSRNTV (the MSRN-TV paper).

Plain decimation (as TorchIO's ``RandomAnisotropy`` does) aliases everything above the LR
Nyquist frequency back into the image; here the cubic kernel is stretched by the zoom, as
``torch.nn.functional.interpolate(mode="bicubic", antialias=True)`` and PIL do, so it is also
the low-pass filter.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

from pipeline.transforms.lr_common import (
    downsample_axes,
    finalize_output,
    normalize_axes,
    normalize_zoom,
    prepare_input,
)
from pipeline.deprecation import renamed_to_zoom

__all__ = ["AntialiasedResize", "AntialiasedResized", "AntialiasedResizeD", "AntialiasedResizeDict"]

#: Keys' cubic convolution parameter used by antialiased bicubic resampling (PIL, torch).
CUBIC_A = -0.5


def _cubic(t: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with ``a = CUBIC_A`` (support ``|t| < 2``)."""
    a, t = CUBIC_A, np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _stretched_cubic(zoom: float) -> Callable[[np.ndarray], np.ndarray]:
    """Cubic kernel stretched by ``zoom``: the interpolator and low-pass of antialiased downsampling."""
    return lambda t: _cubic(t / zoom)


class AntialiasedResize(Transform):
    """Downsample by ``1 / f`` along some axes with antialiased bicubic interpolation.

    Along each axis in ``axes`` (``n`` voxels → ``m = floor(n / f)``), output voxel ``j`` is

    .. math::  y_j = \\frac{\\sum_i c((i - x_j) / f)\\, x_i}{\\sum_i c((i - x_j) / f)}, \\qquad x_j = (j + 1/2) f - 1/2,

    with ``c`` Keys' cubic kernel (``a = -0.5``) stretched by ``f`` (support ``2 f`` input
    voxels each side), i.e. the separable antialiased bicubic filter of
    ``torch.nn.functional.interpolate(mode="bicubic", antialias=True, align_corners=False)``
    applied one axis at a time, so it works for 3D volumes and any subset of axes; borders are
    mirrored (torch instead truncates the kernel, so the two differ only within ``2 f`` voxels of
    an edge). ``x_j`` is the grid of ``zoomed_affine(affine, 1 / f)``. Bicubic weights are
    partly negative: outputs may slightly undershoot/overshoot the input range near edges.

    Args:
        zoom: downsampling (LR spacing / HR spacing, ≥ 1, need not be whole; the SR ratio that undoes
            it) per axis in ``axes``; a scalar applies to all. Default 2.
        axes: resized spatial axes (0-based, channel excluded; negative allowed; ``None`` = all).
            Default ``(0, 1)`` (in-plane for slices stacked along the last axis).
        factors: deprecated alias of ``zoom`` (removed in 0.2.0).

    Input: (C, *spatial) array, tensor or ``MetaTensor`` with 2 or 3 spatial dims. Output:
    (C, *lr_spatial) with spacing ``f`` times the input's along ``axes`` and affine
    ``zoomed_affine(affine, 1 / f)``; ``meta["degradation"]`` records
    ``method="antialiased_resize"``, ``zoom``, ``interpolation="bicubic"``,
    ``antialias=True`` and ``cubic_a``.

    Example::

        >>> AntialiasedResize(2, axes=(0, 1))(hr).shape            # hr: (1, 64, 64, 40)
        torch.Size([1, 32, 32, 40])
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    @renamed_to_zoom("factors")
    def __init__(
        self,
        zoom: Sequence[float] | float = 2,
        *,
        axes: Sequence[int] | None = (0, 1),
        factors: Sequence[float] | float | None = None,
    ) -> None:
        if axes is not None:
            normalize_axes(axes, 3)
        zoom = zoom if factors is None else factors
        self.zoom = normalize_zoom(zoom, None if axes is None else len(tuple(axes)), integer=False)
        self.axes = axes

    def __call__(self, img: NdarrayOrTensor) -> torch.Tensor:
        """Downsample ``img`` (C, *spatial)."""
        img_t, data = prepare_input(img)
        spatial_dims = data.ndim - 1
        axes = normalize_axes(self.axes, spatial_dims)
        zoom = normalize_zoom(self.zoom, len(axes), integer=False)
        out, full = downsample_axes(data, axes, zoom, lambda f: (_stretched_cubic(f), 2 * f))
        return finalize_output(
            out,
            img_t,
            method="antialiased_resize",
            axes=axes,
            zoom=full,
            output_grid="lr",
            params={"interpolation": "bicubic", "antialias": True, "cubic_a": CUBIC_A},
        )


class AntialiasedResized(MapTransform):
    """Dictionary version of :class:`AntialiasedResize`.

    Args:
        keys: keys of the images to resize.
        zoom, axes: see :class:`AntialiasedResize`.
        allow_missing_keys: don't raise when a key is absent.
        factors: deprecated alias of ``zoom`` (removed in 0.2.0).

    Example::

        >>> out = AntialiasedResized("image", zoom=2, axes=(0, 1))({"image": hr})
    """

    backend = AntialiasedResize.backend

    @renamed_to_zoom("factors")
    def __init__(
        self,
        keys: KeysCollection,
        zoom: Sequence[float] | float = 2,
        *,
        axes: Sequence[int] | None = (0, 1),
        allow_missing_keys: bool = False,
        factors: Sequence[float] | float | None = None,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.resize = AntialiasedResize(zoom if factors is None else factors, axes=axes)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.resize(d[key])
        return d


AntialiasedResizeD = AntialiasedResizeDict = AntialiasedResized
