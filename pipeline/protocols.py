# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Named degradation protocols: how LR is made from HR, defined once for training and evaluation.

Every protocol produces its LR on the LR grid, so the interpolation baselines are meaningful and
the SR grid is the HR grid: ``zoom`` (output voxels per LR voxel) undoes the degradation's grid
change. Axes are voxel axes of the (1, X, Y, Z) volume. ``slice_axis`` is the axis to slice
across for the most degraded plane (slice-wise metrics, 2D networks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from monai.data import MetaTensor
from monai.transforms import Transform

from pipeline.transforms.lr_blur import BlurDownsample
from pipeline.transforms.lr_kspace import KSpaceTruncation
from pipeline.transforms.lr_resize import AntialiasedResize
from pipeline.transforms.lr_thick_slice import ThickSlice

__all__ = ["Protocol", "PROTOCOLS", "get_protocol", "crop_to_multiple"]


@dataclass(frozen=True)
class Protocol:
    """A degradation protocol.

    Attributes:
        name: identifier used on the command line and in bundles (e.g. ``kspace-2x2``).
        description: one line for reports.
        make_transform: builds the array transform (1, X, Y, Z) HR → LR on the LR grid.
        zoom: output voxels per LR voxel along each axis (the inverse of the grid change).
        slice_axis: the axis to slice across: its slices contain all degraded axes.
        baselines: non-learned methods that fit this degradation.
        source: the paper whose degradation this is.
    """

    name: str
    description: str
    make_transform: Callable[[], Transform]
    zoom: tuple[float, float, float]
    slice_axis: int
    baselines: tuple[str, ...] = ("nearest", "linear", "cubic")
    source: str = ""
    seed: int = field(default=0)

    def degrade(self, hr: MetaTensor, seed: int | None = None) -> MetaTensor:
        """Apply the protocol to a (1, X, Y, Z) HR volume (cropped first to a multiple of the zoom)."""
        transform = self.make_transform()
        if hasattr(transform, "set_random_state"):
            transform.set_random_state(seed=self.seed if seed is None else seed)
        return transform(crop_to_multiple(hr, self.zoom))


def crop_to_multiple(image: torch.Tensor, zoom: tuple[float, ...]) -> torch.Tensor:
    """Crop the end of each spatial axis so its size is a multiple of the (integer) zoom there.

    Cropping at the end keeps voxel 0, so the affine is unchanged. Non-integer zooms crop nothing.
    """
    slices = [slice(None)]
    for size, z in zip(image.shape[1:], zoom):
        step = int(round(z)) if abs(z - round(z)) < 1e-6 and z >= 1 else 1
        slices.append(slice(0, size - size % step))
    return image[tuple(slices)]


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            "kspace-2x2",
            "k-space truncation keeping the central 1/2 x 1/2 along axes 1, 2 (4x fewer samples), LR grid",
            lambda: KSpaceTruncation((2, 2), axes=(1, 2), output_grid="lr"),
            (1.0, 2.0, 2.0),
            slice_axis=0,
            baselines=("nearest", "linear", "cubic", "kspace_zero_filled"),
            source="seed 003 (mDCSRN)",
        ),
        Protocol(
            "bicubic-x2",
            "antialiased bicubic downsampling x2 in-plane (axes 0, 1)",
            lambda: AntialiasedResize(2, axes=(0, 1)),
            (2.0, 2.0, 1.0),
            slice_axis=2,
            source="seeds 001 (MRLNet), 002 (MSRN-TV), 004 (RRLSRN)",
        ),
        Protocol(
            "bicubic-x4",
            "antialiased bicubic downsampling x4 in-plane (axes 0, 1)",
            lambda: AntialiasedResize(4, axes=(0, 1)),
            (4.0, 4.0, 1.0),
            slice_axis=2,
            source="seed 004 (RRLSRN cascade)",
        ),
        Protocol(
            "blur-x2",
            "Gaussian PSF (FWHM = LR voxel) + decimation x2 in-plane (axes 0, 1), L = DSH",
            lambda: BlurDownsample(2, axes=(0, 1)),
            (2.0, 2.0, 1.0),
            slice_axis=2,
            source="seed 000 (MFCN)",
        ),
        Protocol(
            "blur-x3",
            "Gaussian PSF (FWHM = LR voxel) + decimation x3 in-plane (axes 0, 1), L = DSH",
            lambda: BlurDownsample(3, axes=(0, 1)),
            (3.0, 3.0, 1.0),
            slice_axis=2,
            source="seed 000 (MFCN)",
        ),
        Protocol(
            "thick-slice-x4",
            "4 mm Gaussian-profile slices, no gap, along axis 2",
            lambda: ThickSlice(4.0, axis=2, gap_mm=0.0, profile="gaussian"),
            (1.0, 1.0, 4.0),
            slice_axis=0,
            source="clinical thick-slice acquisitions",
        ),
    )
}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; ``ValueError`` lists the known ones otherwise."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; known: {sorted(PROTOCOLS)}") from None
