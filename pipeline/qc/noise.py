# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""How noisy is an input? A blind estimate of its noise, in the unit the bundles' training recipes use.

The networks trained on noise-free T1 (``trained_on_noisy_inputs: false`` in their metadata) amplify noise: out of
distribution they score below cubic B-spline on every scan with Rician noise of 3 % of the LR's robust maximum
(``docs/ood/``). A user with a clinical scan and no ground truth cannot see that in the output, so ``mrisr infer``
estimates the input's noise and warns when such a bundle meets a noisy input.

The estimate is Immerkær's (1996) Laplacian-difference operator made robust with a median: the 3 x 3
kernel ``[[1, -2, 1], [-2, 4, -2], [1, -2, 1]]`` cancels planar intensity, and for i.i.d. noise of standard
deviation s its response has standard deviation 6 s, so ``s = 1.4826 · median(|response|) / 6``. The median
over the voxels of an eroded head mask keeps edges (a minority of voxels) from inflating it. MONAI has noise
transforms but no noise estimator, hence this module.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from scipy import ndimage

from pipeline.inference.methods import method_bundle_metadata
from pipeline.qc.check import MASK_SOURCE
from pipeline.scaling import robust_intensity_scale
from pipeline.transforms.brain_mask import BrainMask
from pipeline.transforms.grid import spacing_from_affine

__all__ = ["NOISE_WARNING_LEVEL", "check_input_noise", "estimate_noise_fraction", "input_noise_record"]

NOISE_WARNING_LEVEL = 0.02
"""Estimated noise (fraction of the robust maximum) above which ``mrisr infer`` warns for a bundle trained on
noise-free inputs. mrln and srcnn fall below cubic B-spline between Rician noise of 1.5 % (still +0.3 to +0.5 dB) and
2 % (-0.3 dB) on the ``val`` scans (``docs/results/noise_level_val.csv``). What the estimator reads, over the MALF
``val`` and ``test`` scans, their T2-like, FLAIR-like and bias-field versions and Colin27's head under five
protocols (``benchmarks/noise_estimate_calibration.py``, ``docs/results/noise_estimate_calibration.csv``):
noise-free at most 1.5 % under the four bundles' protocols (``bicubic-x2``, ``blur-x2``; 2.2 % for a synthetic
FLAIR-like scan under k-space truncation), 1.5 % noise 1.6-2.9 %, 3 % noise at least 3.1 %."""

ESTIMATOR = "Immerkaer Laplacian-difference operator, median of |response| in the eroded head mask"

_KERNEL = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
_MAD_TO_SD = 1.4826


def estimate_noise_fraction(
    volume: torch.Tensor | np.ndarray, mask: np.ndarray, spacing: Sequence[float] | None = None
) -> float:
    """Standard deviation of the noise in ``volume``, as a fraction of its robust maximum.

    Args:
        volume: (X, Y, Z) or (1, X, Y, Z) intensities (any units).
        mask: (X, Y, Z) boolean head (or foreground) mask; eroded by one voxel so that its edge is not counted.
        spacing: voxel size (mm); the kernel runs in the planes of the two finest axes (in-plane for thick
            slices, where neighbouring voxels differ least in anatomy). ``None``: the first two axes.

    Returns:
        the noise standard deviation divided by
        :func:`~pipeline.scaling.robust_intensity_scale` of ``volume`` (the reference
        :class:`~pipeline.transforms.domain.RandLRNoise` draws its levels in); 0.0 when the eroded mask is empty.
    """
    data = np.asarray(volume.detach().cpu() if isinstance(volume, torch.Tensor) else volume, dtype=np.float64)
    data = data[0] if data.ndim == 4 else data
    if data.ndim != 3 or data.shape != mask.shape:
        raise ValueError(f"expected a 3D volume and a mask of its shape, got {data.shape} and {mask.shape}")
    order = np.argsort(spacing) if spacing is not None else np.array([0, 1, 2])
    plane_axes = sorted(int(a) for a in order[:2])
    kernel = np.expand_dims(_KERNEL, axis=3 - plane_axes[0] - plane_axes[1])  # the third axis gets size 1
    response = ndimage.convolve(data, kernel, mode="nearest")
    inner = ndimage.binary_erosion(mask, iterations=1)
    if not inner.any():
        return 0.0
    sd = _MAD_TO_SD * float(np.median(np.abs(response[inner]))) / 6.0
    return sd / robust_intensity_scale(data)


def _trained_on_noisy_inputs(method: Any) -> bool | None:
    """The bundle metadata's ``trained_on_noisy_inputs`` of ``method`` (``None``: not a bundle, or not recorded)."""
    value = method_bundle_metadata(method).get("trained_on_noisy_inputs")
    return None if value is None else bool(value)


def input_noise_record(method: Any, lr: MetaTensor) -> dict[str, Any] | None:
    """The sidecar's ``input_noise`` entry for a network ``method`` about to run on ``lr``; ``None`` for baselines.

    Args:
        method: a loaded method (its bundle's metadata says whether its weights saw noisy inputs).
        lr: (1, X, Y, Z) the input, affine in mm.

    Returns:
        ``estimate`` (:func:`estimate_noise_fraction` in the input's head mask), ``estimator``, ``mask``,
        ``warning_level`` (:data:`NOISE_WARNING_LEVEL`), ``bundle_trained_on_noisy_inputs`` and ``warning``: a
        sentence when the estimate is above the level and the bundle was trained on noise-free inputs only,
        else ``None``.
    """
    if getattr(getattr(method, "method", method), "network", None) is None:
        return None
    head = BrainMask(region="head")(lr)[0].numpy().astype(bool)
    estimate = estimate_noise_fraction(lr, head, spacing_from_affine(lr.affine))
    trained = _trained_on_noisy_inputs(method)
    warning = None
    if trained is False and estimate > NOISE_WARNING_LEVEL:
        warning = (
            f"estimated noise {100 * estimate:.1f} % of the input's robust maximum (warning level "
            f"{100 * NOISE_WARNING_LEVEL:g} %): {method.name} was trained on noise-free inputs only (its metadata's "
            "trained_on_noisy_inputs), and the shipped bundles trained so scored below cubic B-spline on every input "
            "with 3 % Rician noise (docs/ood); a bundle trained with noise is safer here (README, 'Which bundle for "
            "which scans')"
        )
    return {
        "estimate": round(estimate, 5),
        "estimator": ESTIMATOR,
        "mask": MASK_SOURCE,
        "warning_level": NOISE_WARNING_LEVEL,
        "bundle_trained_on_noisy_inputs": trained,
        "warning": warning,
    }


def check_input_noise(method: Any, lr: MetaTensor, name: str | os.PathLike) -> dict[str, Any] | None:
    """:func:`input_noise_record`, with its warning (if any) issued as a ``UserWarning`` naming ``name``."""
    record = input_noise_record(method, lr)
    if record is not None and record["warning"]:
        warnings.warn(f"{name}: {record['warning']}", stacklevel=3)
    return record
