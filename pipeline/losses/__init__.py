# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Training losses of the SR networks. L1/L2 are ``torch.nn.L1Loss``/``MSELoss``; SSIM is MONAI's ``SSIMLoss``."""

from __future__ import annotations

from pipeline.losses.charbonnier import CharbonnierLoss
from pipeline.losses.combined import CharbonnierGDLLoss, L2TVLoss
from pipeline.losses.deep_supervision import DeepSupervisionMSELoss
from pipeline.losses.gradient import GradientDifferenceLoss, TotalVariationLoss, spatial_differences
from pipeline.losses.wgan_gp import (
    WGANGPCriticLoss,
    WGANGPGeneratorLoss,
    gradient_penalty,
    wgan_critic_loss,
    wgan_generator_loss,
)

__all__ = [
    "CharbonnierLoss",
    "CharbonnierGDLLoss",
    "L2TVLoss",
    "DeepSupervisionMSELoss",
    "GradientDifferenceLoss",
    "TotalVariationLoss",
    "spatial_differences",
    "WGANGPCriticLoss",
    "WGANGPGeneratorLoss",
    "gradient_penalty",
    "wgan_critic_loss",
    "wgan_generator_loss",
]
