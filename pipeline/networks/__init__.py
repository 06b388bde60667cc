# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Super-resolution networks: one module per paper, 2D/3D from one definition via MONAI layers."""

from __future__ import annotations

from pipeline.networks.mdcsrn import MDCSRN
from pipeline.networks.mfcn import MFCN, MFU
from pipeline.networks.mrlnet import MRLNet
from pipeline.networks.msrntv import MSRNTV, MultiScaleResidualModule
from pipeline.networks.rrlsrn import RRLSRN, LaplacianLevel
from pipeline.networks.srcnn import SRCNN
from pipeline.networks.wgan_critic import WGANCritic

__all__ = [
    "MDCSRN",
    "MFCN",
    "MFU",
    "MRLNet",
    "MSRNTV",
    "MultiScaleResidualModule",
    "RRLSRN",
    "LaplacianLevel",
    "SRCNN",
    "WGANCritic",
]
