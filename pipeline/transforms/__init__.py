# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""MONAI transforms: brain mask, N4, intensity normalisation and LR synthesis (array + dict pairs)."""

from __future__ import annotations

from pipeline.transforms.grid import spacing_from_affine, voxel_to_world, zoomed_affine, zoomed_shape
from pipeline.transforms.lr_blur import BlurDownsample, BlurDownsampled, BlurDownsampleD, BlurDownsampleDict
from pipeline.transforms.lr_kspace import (
    KSpaceTruncation,
    KSpaceTruncationd,
    KSpaceTruncationD,
    KSpaceTruncationDict,
    kspace_mask,
    outside_energy_ratio,
)
from pipeline.transforms.lr_resize import AntialiasedResize, AntialiasedResized, AntialiasedResizeD, AntialiasedResizeDict
from pipeline.transforms.lr_thick_slice import ThickSlice, ThickSliced, ThickSliceD, ThickSliceDict

__all__ = [
    "AntialiasedResize",
    "AntialiasedResizeD",
    "AntialiasedResizeDict",
    "AntialiasedResized",
    "BlurDownsample",
    "BlurDownsampleD",
    "BlurDownsampleDict",
    "BlurDownsampled",
    "KSpaceTruncation",
    "KSpaceTruncationD",
    "KSpaceTruncationDict",
    "KSpaceTruncationd",
    "ThickSlice",
    "ThickSliceD",
    "ThickSliceDict",
    "ThickSliced",
    "kspace_mask",
    "outside_energy_ratio",
    "spacing_from_affine",
    "voxel_to_world",
    "zoomed_affine",
    "zoomed_shape",
]
