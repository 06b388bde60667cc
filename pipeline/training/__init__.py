# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Training of the SR networks as MONAI bundle workflows: datasets, engines, metrics, handlers.

Bundle configs (a bundle's ``inference.json``, the shared ``bundles/common/train_base.json`` and its
``train.json``, merged in that order: :mod:`pipeline.training.config_layers`) build everything from these components:
:func:`training_dataset` / :func:`validation_dataset` (patch pairs and whole validation volumes made
on the fly from a manifest and a named degradation protocol), MONAI's ``SupervisedTrainer`` with
:func:`prepare_sr_batch`, :class:`SRVolumeEvaluator` (full-volume validation through
``NetworkSR`` with :class:`MaskedPSNR` against a baseline), :class:`BestModelSaver`,
:class:`ResumableCheckpoint` (with :class:`RNGStates`), :class:`MetricsCSVLogger`, :class:`TimeBudget`,
:class:`GradientClipping`, and :class:`WGANGPTrainer` for mDCSRN-GAN.
"""

from __future__ import annotations

from pipeline.training.datasets import augmented_volumes, scan_records, training_dataset, validation_dataset
from pipeline.training.distributed import is_secondary_rank
from pipeline.training.engines import SRVolumeEvaluator, prepare_sr_batch
from pipeline.training.fast import FastTrainingInferer, to_channels_last
from pipeline.training.gan import WGANGPTrainer
from pipeline.training.handlers import (
    BestModelSaver,
    EpochWeightsSaver,
    GradientClipping,
    MetricsCSVLogger,
    ResumableCheckpoint,
    TimeBudget,
    loss_from_output,
    unwrap_module,
)
from pipeline.training.metrics import MaskedPSNR, MaskedPSNRGain, MaskedRelativeSharpness, PerVolumeMean, masked_psnr
from pipeline.training.norm_calibration import calibrate_norm_statistics
from pipeline.training.optim import param_groups
from pipeline.training.patches import RandPairedPatchd, RandPairedPatchD, RandPairedPatchDict, valid_patch_starts
from pipeline.training.rng_state import RNGStates
from pipeline.training.through_plane import RandThroughPlanePaird, through_plane_training_dataset
from pipeline.training.volumes import (
    UPSAMPLING_MODES,
    BaselineSRd,
    LoadVolumed,
    SynthesizeLRd,
    ToNetworkInputd,
    input_zoom,
    to_network_input,
)
from pipeline.training.workflow import bundle_workflow, load_initial_weights, train

__all__ = [
    "UPSAMPLING_MODES",
    "BaselineSRd",
    "calibrate_norm_statistics",
    "FastTrainingInferer",
    "BestModelSaver",
    "EpochWeightsSaver",
    "GradientClipping",
    "LoadVolumed",
    "MaskedPSNR",
    "MaskedPSNRGain",
    "MaskedRelativeSharpness",
    "MetricsCSVLogger",
    "RandPairedPatchD",
    "RandPairedPatchDict",
    "RandPairedPatchd",
    "RandThroughPlanePaird",
    "ResumableCheckpoint",
    "RNGStates",
    "SRVolumeEvaluator",
    "TimeBudget",
    "SynthesizeLRd",
    "ToNetworkInputd",
    "WGANGPTrainer",
    "bundle_workflow",
    "is_secondary_rank",
    "input_zoom",
    "load_initial_weights",
    "loss_from_output",
    "masked_psnr",
    "param_groups",
    "PerVolumeMean",
    "prepare_sr_batch",
    "augmented_volumes",
    "scan_records",
    "to_channels_last",
    "to_network_input",
    "through_plane_training_dataset",
    "train",
    "training_dataset",
    "unwrap_module",
    "valid_patch_starts",
    "validation_dataset",
]
