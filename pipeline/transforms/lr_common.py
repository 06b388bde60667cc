# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Machinery shared by the LR-synthesis transforms (``lr_kspace``, ``lr_blur``, ``lr_resize``,
``lr_thick_slice``).

The spatial-domain degradations (blur + decimation, antialiased resize, thick slices) are
separable and linear: along each degraded spatial axis an input of
``n`` voxels is mapped to ``m`` output voxels by an ``(m, n)`` matrix whose row ``j`` holds the
weights of the input voxels contributing to output voxel ``j``. Output voxel ``j`` is centred at
input voxel coordinate

.. math::  x_j = (j + 1/2)\\,s - 1/2, \\qquad s = \\text{output spacing} / \\text{input spacing},

which is exactly the grid of ``zoomed_affine(affine, 1 / s)`` (:func:`pipeline.transforms.grid.zoomed_affine`;
same field of view, half-voxel shift). ``s`` is the degradation's ``zoom``: the SR ratio that undoes it
(output voxels per input voxel, ≥ 1). Weights that fall outside ``[0, n - 1]`` are folded back by
half-sample symmetric reflection (voxel ``-1`` is voxel ``0``, as in ``scipy.ndimage``'s
``mode="reflect"``) and each row is normalised to sum 1, so a constant image stays constant.

Each transform records what it did in ``meta["degradation"]`` (see :func:`finalize_output`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.data.utils import to_affine_nd
from monai.utils import convert_to_dst_type, convert_to_tensor, ensure_tuple, ensure_tuple_rep

from pipeline.transforms.grid import as_numpy_affine, spacing_from_affine, zoomed_affine, zoomed_shape

__all__ = [
    "DEGRADATION_KEY",
    "DEGRADATION_HISTORY_KEY",
    "FWHM_TO_SIGMA",
    "apply_along_axis",
    "boxcar_weights",
    "downsample_axes",
    "finalize_output",
    "gaussian_weights",
    "image_geometry",
    "lr_centres",
    "lr_size",
    "normalize_axes",
    "normalize_zoom",
    "prepare_input",
    "resampling_matrix",
]

DEGRADATION_KEY = "degradation"
DEGRADATION_HISTORY_KEY = "degradation_history"
#: sigma = FWHM * FWHM_TO_SIGMA for a Gaussian, i.e. 1 / (2 sqrt(2 ln 2)) ≈ 0.4247.
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def normalize_axes(axes: Sequence[int] | int | None, spatial_dims: int) -> tuple[int, ...]:
    """Spatial axis indices (0-based, channel excluded; negative counts from the end) as
    non-negative ints. ``None`` means all spatial axes.

    Raises:
        ValueError: an axis out of range, repeated, or no axis at all.
    """
    if axes is None:
        return tuple(range(spatial_dims))
    out = []
    for a in ensure_tuple(axes):
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise ValueError(f"axes must be integers, got {axes!r}")
        if not -spatial_dims <= a < spatial_dims:
            raise ValueError(f"axis {a} is out of range for an image with {spatial_dims} spatial dims")
        out.append(int(a) % spatial_dims)
    if not out:
        raise ValueError("at least one axis is needed")
    if len(set(out)) != len(out):
        raise ValueError(f"axes must be distinct, got {tuple(axes)}")
    return tuple(out)


def normalize_zoom(zoom: Sequence[float] | float, n_axes: int | None, *, integer: bool) -> tuple[float, ...]:
    """Validate the zoom of a degradation: LR spacing / HR spacing along each degraded axis, each ≥ 1
    (the SR ratio that undoes it, output voxels per input voxel in MONAI's ``Zoom`` sense).

    Args:
        zoom: one value, or one per axis.
        n_axes: number of axes the zoom applies to (a scalar is repeated); ``None`` when the
            axes are not known yet (only the values are checked).
        integer: whether each value must be a whole number.

    Raises:
        ValueError: wrong length, a value < 1, not finite, or not whole when ``integer``.
    """
    values = ensure_tuple(zoom)
    if n_axes is not None:
        if len(values) == 1:
            values = ensure_tuple_rep(values[0], n_axes)
        if len(values) != n_axes:
            raise ValueError(f"zoom has {len(values)} entries but {n_axes} axes are given")
    out = []
    for f in values:
        if isinstance(f, bool) or not isinstance(f, (int, float, np.integer, np.floating)):
            raise ValueError(f"zoom must be numbers, got {zoom!r}")
        if not math.isfinite(f) or f < 1:
            raise ValueError(f"zoom must be finite and >= 1 (LR spacing / HR spacing), got {zoom!r}")
        if integer and float(f) != int(f):
            raise ValueError(f"zoom must be whole numbers, got {zoom!r}")
        out.append(float(f))
    return tuple(out)


def prepare_input(img: NdarrayOrTensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``img`` into the object carrying metadata and a plain floating-point tensor.

    Returns:
        ``(img_t, data)``: ``img_t`` is ``img`` as a tensor (a ``MetaTensor`` when metadata is
        tracked), ``data`` the same values as a plain float tensor of shape (C, *spatial).

    Raises:
        ValueError: not (C, X, Y) or (C, X, Y, Z).
    """
    img_t = convert_to_tensor(img, track_meta=get_track_meta())
    data = convert_to_tensor(img_t, track_meta=False)
    if data.ndim not in (3, 4):
        raise ValueError(
            f"expected a channel-first image (C, *spatial) with 2 or 3 spatial dims, got shape {tuple(data.shape)}"
        )
    if not (data.is_floating_point() or data.is_complex()):
        data = data.float()
    return img_t, data


def image_geometry(img: torch.Tensor, spatial_dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(4, 4) voxel-to-world affine and spacing (mm, one per spatial axis) of ``img``.

    A tensor without metadata has the identity affine (1 mm voxels).
    """
    affine = img.affine.detach().cpu().numpy() if isinstance(img, MetaTensor) else np.eye(4)
    affine4 = as_numpy_affine(to_affine_nd(3, affine))
    return affine4, spacing_from_affine(affine4)[:spatial_dims]


def lr_size(n: int, step: float, axis: int) -> int:
    """Number of output voxels along an axis of ``n`` input voxels for output spacing ``step``
    input voxels: ``floor(n / step)`` (as :func:`zoomed_shape`).

    Raises:
        ValueError: the output would have no voxel (``step > n``).
    """
    if step > n * (1 + 1e-9):
        raise ValueError(f"axis {axis} has {n} voxels, fewer than the output spacing of {step:g} voxels")
    return zoomed_shape([n], 1.0 / step)[0]


def lr_centres(m: int, step: float) -> np.ndarray:
    """Input voxel coordinates ``(j + 1/2) step - 1/2`` of the ``m`` output voxel centres,
    consistent with ``zoomed_affine(affine, 1 / step)``."""
    return (np.arange(m, dtype=np.float64) + 0.5) * step - 0.5


def gaussian_weights(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    """Gaussian PSF of standard deviation ``sigma`` voxels sampled at offset ``t`` (voxels):
    ``exp(-t^2 / (2 sigma^2))`` (unnormalised; the kernel of ``scipy.ndimage.gaussian_filter``)."""
    return lambda t: np.exp(-0.5 * (t / sigma) ** 2)


def boxcar_weights(width: float) -> Callable[[np.ndarray], np.ndarray]:
    """Boxcar profile of ``width`` voxels applied to the linear interpolant of the samples.

    The weight of the sample at offset ``t`` is ``∫ box(u) hat(u - t) du`` (``hat`` the linear
    interpolation kernel): a trapezoid, computed as the second difference
    ``P(t + 1) - 2 P(t) + P(t - 1)`` of ``P(x) = ((x + w/2)_+^2 - (x - w/2)_+^2) / 2``. Unlike
    a sampled boxcar it varies continuously with the slab position (partial volumes at the
    slab edges), and it reproduces linear intensity ramps exactly.
    """
    half = width / 2.0

    def second_antiderivative(x: np.ndarray) -> np.ndarray:
        return 0.5 * (np.clip(x + half, 0.0, None) ** 2 - np.clip(x - half, 0.0, None) ** 2)

    return lambda t: second_antiderivative(t + 1) - 2 * second_antiderivative(t) + second_antiderivative(t - 1)


def resampling_matrix(
    n: int, centres: np.ndarray, weight_fn: Callable[[np.ndarray], np.ndarray], radius: float
) -> np.ndarray:
    """(m, n) float64 matrix of normalised weights mapping ``n`` input voxels to ``m`` outputs.

    Args:
        n: input voxels along the axis.
        centres: (m,) input voxel coordinates of the output samples.
        weight_fn: weight of an input voxel at (vectorised) offset ``t = i - centre`` voxels.
        radius: truncation radius in voxels: weights are evaluated for ``|t| <= radius + 1/2``
            and are 0 beyond, symmetrically about each centre (``radius = 4 sigma`` keeps the
            same samples as ``scipy.ndimage.gaussian_filter(truncate=4)`` at integer centres).

    Returns:
        Rows sum to 1; indices outside ``[0, n - 1]`` are folded back by half-sample symmetric
        reflection.
    """
    reach = int(math.ceil(radius)) + 1
    offsets = np.arange(-reach, reach + 1)
    idx = np.floor(centres)[:, None].astype(np.int64) + offsets[None, :]
    offsets_t = idx - centres[:, None]
    weights = np.where(np.abs(offsets_t) <= radius + 0.5, weight_fn(offsets_t), 0.0)
    folded = np.mod(idx, 2 * n)
    folded = np.where(folded >= n, 2 * n - 1 - folded, folded)
    matrix = np.zeros((len(centres), n))
    np.add.at(matrix, (np.repeat(np.arange(len(centres)), len(offsets)), folded.ravel()), weights.ravel())
    return matrix / matrix.sum(axis=1, keepdims=True)


def apply_along_axis(data: torch.Tensor, matrix: np.ndarray | torch.Tensor, axis: int) -> torch.Tensor:
    """Apply an (m, n) matrix along spatial ``axis`` of ``data`` (C, *spatial): (…, n, …) → (…, m, …).

    The matrix is cast to ``data``'s dtype (a complex matrix needs complex ``data``).
    """
    mat = torch.as_tensor(matrix, dtype=data.dtype, device=data.device)
    return (data.movedim(axis + 1, -1) @ mat.T).movedim(-1, axis + 1).contiguous()


def downsample_axes(
    data: torch.Tensor,
    axes: Sequence[int],
    zoom: Sequence[float],
    kernel: Callable[[float], tuple[Callable[[np.ndarray], np.ndarray], float]],
) -> tuple[torch.Tensor, list[float]]:
    """Resample (C, *spatial) ``data`` onto the LR grid, one axis at a time.

    Args:
        data: (C, *spatial) tensor.
        axes: degraded spatial axes; ``zoom``: LR spacing / HR spacing for each.
        kernel: for a zoom ``f``, the weight function and truncation radius (voxels) of
            :func:`resampling_matrix`.

    Returns:
        The (C, *lr_spatial) tensor and the zoom of every spatial axis (1 where untouched).
    """
    full = [1.0] * (data.ndim - 1)
    out = data
    for axis, f in zip(axes, zoom):
        full[axis] = f
        if f == 1:
            continue
        n = data.shape[axis + 1]
        weights, radius = kernel(f)
        out = apply_along_axis(out, resampling_matrix(n, lr_centres(lr_size(n, f, axis), f), weights, radius), axis)
    return out, full


def finalize_output(
    out: torch.Tensor,
    img: torch.Tensor,
    *,
    method: str,
    axes: Sequence[int],
    zoom: Sequence[float],
    output_grid: str,
    params: dict[str, Any],
) -> torch.Tensor:
    """Wrap the degraded data like ``img``, update the affine and record the degradation.

    Args:
        out: degraded data (C, *spatial_out), plain tensor.
        img: the input as returned by :func:`prepare_input` (``MetaTensor`` or plain tensor).
        method: name recorded in the metadata, e.g. ``"blur_downsample"``.
        axes: degraded spatial axes.
        zoom: the SR ratio that undoes the degradation along every spatial axis: LR spacing / HR
            spacing, ≥ 1 (1 = untouched), output voxels per input voxel in MONAI's ``Zoom`` sense.
        output_grid: ``"lr"``: the output is on the LR grid, affine ``zoomed_affine(affine, 1 / zoom)``
            (same field of view, ``zoom`` times the spacing); ``"hr"``: input matrix and affine kept.
        params: method-specific JSON-serialisable parameters added to the record.

    Returns:
        ``MetaTensor`` when ``img`` is one (its metadata copied, ``affine`` updated and
        ``meta["degradation"]`` / ``meta["degradation_history"]`` written), else a plain tensor.
        ``meta["degradation"]`` holds ``method``, ``zoom``, ``axes``, ``output_grid``,
        ``input_shape``, ``output_shape``, ``input_spacing_mm``, ``output_spacing_mm`` and
        ``params``' entries; ``meta["degradation_history"]`` lists every record of a chain of
        degradations, oldest first (the first record's ``input_spacing_mm`` is the original HR
        grid's). Records of older versions name ``zoom`` ``factors``
        (:func:`pipeline.inference.sidecar.with_zoom_key` reads both).

    Raises:
        ValueError: ``output_grid`` is neither ``"lr"`` nor ``"hr"``.
    """
    if output_grid not in ("hr", "lr"):
        raise ValueError(f"output_grid must be 'hr' or 'lr', got {output_grid!r}")
    result = convert_to_dst_type(out, dst=img, dtype=out.dtype)[0]
    if not isinstance(result, MetaTensor):
        return result
    spatial_dims = len(zoom)
    grid_change = [1.0 / float(z) if output_grid == "lr" else 1.0 for z in zoom]
    affine4, in_spacing = image_geometry(img, spatial_dims)
    new_affine = zoomed_affine(affine4, grid_change + [1.0] * (3 - spatial_dims))
    rank = result.affine.shape[-1] - 1
    result.affine = torch.as_tensor(to_affine_nd(rank, new_affine), dtype=result.affine.dtype)
    record = {
        "method": method,
        "zoom": [float(z) for z in zoom],
        "axes": [int(a) for a in axes],
        "output_grid": output_grid,
        "input_shape": [int(n) for n in img.shape[1:]],
        "output_shape": [int(n) for n in out.shape[1:]],
        "input_spacing_mm": [float(s) for s in in_spacing],
        "output_spacing_mm": [float(s) for s in spacing_from_affine(new_affine)[:spatial_dims]],
        **params,
    }
    previous = result.meta.get(DEGRADATION_KEY)
    history = list(result.meta.get(DEGRADATION_HISTORY_KEY) or ([previous] if previous else []))
    result.meta[DEGRADATION_KEY] = record
    result.meta[DEGRADATION_HISTORY_KEY] = history + [dict(record)]
    return result
