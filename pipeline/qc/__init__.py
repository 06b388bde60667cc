# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Trust checks for SR outputs without ground truth: data consistency, uncertainty, a QC figure, input noise."""

from __future__ import annotations

from pipeline.qc.check import (
    DATA_CONSISTENCY_LIMIT,
    UNCERTAINTY_LIMIT,
    QCMeasures,
    qc_limits,
    qc_measures,
    qc_paths,
    quality_check,
)
from pipeline.qc.consistency import data_consistency, forward_model
from pipeline.qc.noise import NOISE_WARNING_LEVEL, check_input_noise, estimate_noise_fraction, input_noise_record
from pipeline.qc.uncertainty import POOLING_SIGMA_VOXELS, augmentations, tta_members, uncertainty_map

__all__ = [
    "POOLING_SIGMA_VOXELS",
    "DATA_CONSISTENCY_LIMIT",
    "NOISE_WARNING_LEVEL",
    "UNCERTAINTY_LIMIT",
    "QCMeasures",
    "augmentations",
    "check_input_noise",
    "data_consistency",
    "estimate_noise_fraction",
    "forward_model",
    "input_noise_record",
    "qc_limits",
    "qc_measures",
    "qc_paths",
    "quality_check",
    "tta_members",
    "uncertainty_map",
]
