# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Zero-filled k-space upsampling: the baseline for k-space-truncated inputs (sinc interpolation).

An LR volume on the LR grid is Fourier-transformed, its spectrum is placed in the centre of a
larger zero spectrum (the HR matrix), and the inverse transform's magnitude is taken. The grid
follows :mod:`pipeline.transforms.grid`: HR voxel ``i`` lies at LR coordinate
``(i + 0.5) / z - 0.5``, which a phase ramp ``exp(2πi k δ / m)`` with ``δ = (1 - z) / (2 z)``
applies before the padding (``m`` LR samples, ``k`` the centred frequency index).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor

from pipeline.transforms.grid import integer_zoom, zoomed_affine

__all__ = ["zero_filled_upsample", "zero_fill_array"]


def _upsample_axis(spectrum: torch.Tensor, axis: int, zoom: int) -> torch.Tensor:
    m = spectrum.shape[axis]
    n = m * zoom
    k = torch.fft.fftfreq(m, d=1.0 / m, dtype=torch.float64)  # integer frequencies, FFT order
    delta = (1.0 - zoom) / (2.0 * zoom)
    shape = [1] * spectrum.ndim
    shape[axis] = m
    spectrum = spectrum * torch.exp(2j * torch.pi * k * delta / m).reshape(shape)
    centred = torch.fft.fftshift(spectrum, dim=axis)
    pad_before = (n - m) // 2 + (m % 2 == 0 and n % 2 == 1)
    pad = [0, 0] * spectrum.ndim
    pad_index = 2 * (spectrum.ndim - 1 - axis)
    pad[pad_index], pad[pad_index + 1] = pad_before, n - m - pad_before
    padded = torch.nn.functional.pad(centred, pad)
    return torch.fft.ifftshift(padded, dim=axis) * zoom


def zero_fill_array(volume: torch.Tensor, zoom: Sequence[int]) -> torch.Tensor:
    """Zero-filled upsampling of a real (X, Y, Z) tensor by integer ``zoom`` per axis.

    Returns:
        float32 tensor of shape (X·zx, Y·zy, Z·zz): magnitude of the inverse FFT of the
        zero-padded, phase-corrected spectrum, in the input's intensity units.
    """
    zoom_int = integer_zoom(zoom, "zero-filled k-space upsampling")
    axes = [a for a, z in enumerate(zoom_int) if z > 1]
    spectrum = torch.fft.fftn(volume.to(torch.float64), dim=axes) if axes else volume.to(torch.complex128)
    for axis in axes:
        spectrum = _upsample_axis(spectrum, axis, zoom_int[axis])
    out = torch.fft.ifftn(spectrum, dim=axes) if axes else spectrum
    return out.abs().to(torch.float32)


def zero_filled_upsample(image: MetaTensor, zoom: Sequence[float]) -> MetaTensor:
    """Zero-filled k-space upsampling of a (1, X, Y, Z) ``MetaTensor``; the affine follows the grid."""
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"expected a (1, X, Y, Z) volume, got shape {tuple(image.shape)}")
    out = zero_fill_array(image.as_tensor()[0], zoom)
    meta = {k: v for k, v in image.meta.items() if k != "affine"}
    meta["spatial_shape"] = np.asarray(out.shape)
    return MetaTensor(out[None], affine=torch.as_tensor(zoomed_affine(image.affine, zoom)), meta=meta)
