# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""MONAI transforms: brain mask, N4, intensity normalisation and LR synthesis (array + dict pairs)."""

from __future__ import annotations

from pipeline.transforms.bias_field import (
    N4BiasFieldCorrection,
    N4BiasFieldCorrectiond,
    N4BiasFieldCorrectionD,
    N4BiasFieldCorrectionDict,
)
from pipeline.transforms.brain_crop import BRAIN_CROP_MARGIN, RandBrainBoxd, brain_crops
from pipeline.transforms.brain_mask import BrainMask, BrainMaskd, BrainMaskD, BrainMaskDict
from pipeline.transforms.domain import (
    DomainRecipe,
    RandBackgroundd,
    RandInvertContrastd,
    RandLabelContrastd,
    RandLRNoise,
    RandLRNoised,
    domain_randomization,
)
from pipeline.transforms.grid import spacing_from_affine, voxel_to_world, zoom_divisor, zoomed_affine, zoomed_shape
from pipeline.transforms.intensity import (
    NORMALIZATION_META_KEY,
    DenormalizeIntensity,
    DenormalizeIntensityd,
    DenormalizeIntensityD,
    DenormalizeIntensityDict,
    NormalizeIntensityInMask,
    NormalizeIntensityInMaskd,
    NormalizeIntensityInMaskD,
    NormalizeIntensityInMaskDict,
)
from pipeline.transforms.lr_blur import BlurDownsample, BlurDownsampled, BlurDownsampleD, BlurDownsampleDict
from pipeline.transforms.lr_kspace import (
    KSpaceTruncation,
    KSpaceTruncationd,
    KSpaceTruncationD,
    KSpaceTruncationDict,
    kspace_mask,
    outside_energy_ratio,
)
from pipeline.transforms.lr_resize import (
    AntialiasedResize,
    AntialiasedResized,
    AntialiasedResizeD,
    AntialiasedResizeDict,
)
from pipeline.transforms.lr_thick_slice import ThickSlice, ThickSliced, ThickSliceD, ThickSliceDict

__all__ = [
    "DomainRecipe",
    "RandBackgroundd",
    "RandBrainBoxd",
    "RandInvertContrastd",
    "RandLabelContrastd",
    "RandLRNoise",
    "RandLRNoised",
    "domain_randomization",
    "BRAIN_CROP_MARGIN",
    "brain_crops",
    "zoom_divisor",
    "AntialiasedResize",
    "AntialiasedResizeD",
    "AntialiasedResized",
    "AntialiasedResizeDict",
    "BlurDownsample",
    "BlurDownsampled",
    "BlurDownsampleD",
    "BlurDownsampleDict",
    "BrainMask",
    "BrainMaskd",
    "BrainMaskD",
    "BrainMaskDict",
    "DenormalizeIntensity",
    "DenormalizeIntensityd",
    "DenormalizeIntensityD",
    "DenormalizeIntensityDict",
    "kspace_mask",
    "KSpaceTruncation",
    "KSpaceTruncationD",
    "KSpaceTruncationd",
    "KSpaceTruncationDict",
    "N4BiasFieldCorrection",
    "N4BiasFieldCorrectiond",
    "N4BiasFieldCorrectionD",
    "N4BiasFieldCorrectionDict",
    "NORMALIZATION_META_KEY",
    "NormalizeIntensityInMask",
    "NormalizeIntensityInMaskD",
    "NormalizeIntensityInMaskd",
    "NormalizeIntensityInMaskDict",
    "outside_energy_ratio",
    "spacing_from_affine",
    "ThickSlice",
    "ThickSliced",
    "ThickSliceD",
    "ThickSliceDict",
    "voxel_to_world",
    "zoomed_affine",
    "zoomed_shape",
]
