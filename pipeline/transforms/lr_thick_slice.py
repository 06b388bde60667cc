# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Thick-slice simulation: slices of a given thickness, slice profile and gap along one axis,
as in clinical 2D multi-slice acquisitions (e.g. 1 mm in-plane, 5 mm slices with a 1 mm gap).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

from pipeline.transforms.lr_common import (
    FWHM_TO_SIGMA,
    apply_along_axis,
    boxcar_weights,
    finalize_output,
    gaussian_weights,
    image_geometry,
    lr_centres,
    lr_size,
    normalize_axes,
    prepare_input,
    resampling_matrix,
)

__all__ = ["ThickSlice", "ThickSliced", "ThickSliceD", "ThickSliceDict"]

PROFILES = ("gaussian", "boxcar")


class ThickSlice(Transform):
    """Resample one axis into thick slices with a slice profile and an inter-slice gap.

    With input spacing ``d`` mm along ``axis`` (``n`` voxels), thickness ``T`` and gap ``G``
    (mm), slices are ``S = T + G`` mm apart; there are ``m = floor(n d / S)`` of them (the
    whole slices that fit in the field of view) and slice ``j`` is centred at input voxel
    coordinate ``x_j = (j + 1/2) S/d - 1/2``, the grid of ``zoomed_affine(affine, d / S)``.
    Its value is

    .. math::  y_j = \\sum_i w(i - x_j)\\, x_i,

    where ``w`` is the slice profile in input voxels, evaluated at the exact (generally
    non-integer) slice position, mirrored at the borders and normalised to sum 1:

    - ``"gaussian"``: a Gaussian of FWHM ``T/d`` sampled at the offsets ``i - x_j`` (truncated
      at 4 sigma), i.e. the Gaussian-filtered volume evaluated at ``x_j``;
    - ``"boxcar"``: the slab ``[x_j - T/2d, x_j + T/2d]`` integrated over the linear
      interpolant of the input samples (trapezoid weights, see
      :func:`~pipeline.transforms.lr_common.boxcar_weights`): partial volumes at the slab edges.

    Both reproduce linear intensity ramps (the boxcar exactly, the 4-sigma-truncated Gaussian to
    < 1e-3 voxel), so slices are not displaced; unlike
    interpolating a profile-filtered volume afterwards, no extra interpolation blur depends on
    the slice position. A gap leaves tissue between slices unsampled (boxcar) or weakly sampled
    (Gaussian tails). Other axes are untouched.

    Args:
        thickness_mm: slice thickness ``T`` in mm (the boxcar width or the Gaussian FWHM); must
            be ≥ the input spacing along ``axis``.
        axis: slice axis (0-based spatial axis, channel excluded; negative allowed). Default -1
            (the last spatial axis).
        gap_mm: gap ``G`` ≥ 0 mm between consecutive slices. Default 0.
        profile: ``"gaussian"`` (default) or ``"boxcar"``.

    Input: (C, *spatial) array, tensor or ``MetaTensor`` with 2 or 3 spatial dims (a plain
    array has 1 mm voxels). Output: (C, *lr_spatial) with ``m`` voxels and spacing ``S`` along
    ``axis``; ``meta["degradation"]`` records ``method="thick_slice"``, ``zoom`` (``S / d``
    on ``axis``, need not be whole), ``profile``, ``thickness_mm``, ``gap_mm`` and
    ``slice_spacing_mm``.

    Example::

        >>> t = ThickSlice(5.0, axis=2, gap_mm=1.0, profile="boxcar")
        >>> t(hr).shape                                     # hr: (1, 64, 64, 60) at 1 mm
        torch.Size([1, 64, 64, 10])
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self, thickness_mm: float, *, axis: int = -1, gap_mm: float = 0.0, profile: str = "gaussian"
    ) -> None:
        if not math.isfinite(thickness_mm) or thickness_mm <= 0:
            raise ValueError(f"thickness_mm must be a positive number of mm, got {thickness_mm!r}")
        if not math.isfinite(gap_mm) or gap_mm < 0:
            raise ValueError(f"gap_mm must be >= 0 mm, got {gap_mm!r}")
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
        normalize_axes(axis, 3)
        self.thickness_mm = float(thickness_mm)
        self.gap_mm = float(gap_mm)
        self.axis = axis
        self.profile = profile

    def __call__(self, img: NdarrayOrTensor) -> torch.Tensor:
        """Resample ``img`` (C, *spatial) into thick slices.

        Raises:
            ValueError: ``thickness_mm`` below the input spacing along ``axis``, or the slice
                spacing longer than the field of view.
        """
        img_t, data = prepare_input(img)
        spatial_dims = data.ndim - 1
        (axis,) = normalize_axes(self.axis, spatial_dims)
        spacing = float(image_geometry(img_t, spatial_dims)[1][axis])
        if self.thickness_mm < spacing * (1 - 1e-6):
            raise ValueError(
                f"thickness_mm={self.thickness_mm:g} is thinner than the input spacing {spacing:g} mm along axis {axis}"
            )
        slice_spacing = self.thickness_mm + self.gap_mm
        step = slice_spacing / spacing
        width = self.thickness_mm / spacing
        if self.profile == "gaussian":
            weights, radius = gaussian_weights(width * FWHM_TO_SIGMA), 4 * width * FWHM_TO_SIGMA
        else:
            weights, radius = boxcar_weights(width), width / 2 + 0.5
        n = data.shape[axis + 1]
        centres = lr_centres(lr_size(n, step, axis), step)
        out = apply_along_axis(data, resampling_matrix(n, centres, weights, radius), axis)
        full = [1.0] * spatial_dims
        full[axis] = step
        return finalize_output(
            out,
            img_t,
            method="thick_slice",
            axes=[axis],
            zoom=full,
            output_grid="lr",
            params={
                "profile": self.profile,
                "thickness_mm": self.thickness_mm,
                "gap_mm": self.gap_mm,
                "slice_spacing_mm": slice_spacing,
            },
        )


class ThickSliced(MapTransform):
    """Dictionary version of :class:`ThickSlice`.

    Args:
        keys: keys of the images to resample.
        thickness_mm, axis, gap_mm, profile: see :class:`ThickSlice`.
        allow_missing_keys: don't raise when a key is absent.

    Example::

        >>> out = ThickSliced("image", 5.0, axis=2, gap_mm=1.0)({"image": hr})
    """

    backend = ThickSlice.backend

    def __init__(
        self,
        keys: KeysCollection,
        thickness_mm: float,
        *,
        axis: int = -1,
        gap_mm: float = 0.0,
        profile: str = "gaussian",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.thick_slice = ThickSlice(thickness_mm, axis=axis, gap_mm=gap_mm, profile=profile)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.thick_slice(d[key])
        return d


ThickSliceD = ThickSliceDict = ThickSliced
