# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""MSRNTV: multi-scale residual network trained with an L2 + total-variation loss (the MSRN-TV paper)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pipeline.networks.layers import check_odd_kernels, check_positive_ints, check_spatial_dims, conv

__all__ = ["MultiScaleResidualModule", "MSRNTV"]


class MultiScaleResidualModule(nn.Module):
    """Multi-scale residual module: 3x3 conv chains with larger-kernel shortcut branches, summed.

    For each stage s with scale kernel ``K_s`` (7 then 5 by default) and stage input ``m_{s-1}``
    (``m_0`` = module input ``x``)::

        m_s = PReLU(conv3(PReLU(conv3(m_{s-1})))) + conv_{K_s}(x)

    The scale branches see the module input and carry no activation, so the 3x3, 5x5 and 7x7 responses
    are fused by summation (the paper's Eqs. 9-16, as far as the OCR'd text can be read).

    Args:
        spatial_dims: 2 or 3.
        channels: filters of every convolution (input = output channels).
        scale_kernel_sizes: odd kernel size of the shortcut branch of each stage.
        kernel_size: odd kernel size of the chained convolutions.
    """

    def __init__(
        self, spatial_dims: int, channels: int, scale_kernel_sizes: Sequence[int] = (7, 5), kernel_size: int = 3
    ) -> None:
        super().__init__()
        self.chains = nn.ModuleList(
            nn.Sequential(
                conv(spatial_dims, channels, channels, kernel_size, act="prelu"),
                conv(spatial_dims, channels, channels, kernel_size, act="prelu"),
            )
            for _ in scale_kernel_sizes
        )
        self.scales = nn.ModuleList(conv(spatial_dims, channels, channels, k) for k in scale_kernel_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *S) -> (B, C, *S)."""
        scale_outputs = [scale(x) for scale in self.scales]
        m = x
        for i, chain in enumerate(self.chains):
            m = chain(m) + scale_outputs[i]
        return m


class MSRNTV(nn.Module):
    """Multi-scale residual SR network with global residual learning on the interpolated LR image.

    "MRI super-resolution reconstruction based on multi-scale residual modules and total variation
    regularisation" (the MSRN-TV paper, Hans Publishers 2021, OCR'd Chinese text):

    - shallow features: ``F_1 = PReLU(conv3(x))``, ``F_0 = PReLU(conv3(F_1))`` (128 filters);
    - N multi-scale residual modules, each followed by the global skip from the shallow features:
      ``F_{B_n} = H_{B_n}(F_{B_{n-1}}) + F_0`` (Eqs. 4-6), see :class:`MultiScaleResidualModule`;
    - reconstruction ``F_R = PReLU(conv3(F_{B_N}))`` to ``out_channels`` (Eq. 7) and ``y = F_R + x`` (Eq. 8).

    Reading of the OCR'd text (documented choices): N = 4 modules, each with two stages (7x7 then 5x5 scale
    branch), which gives the stated depth of 19 convolutions along the main path (2 + 4 x 4 + 1); PReLU has
    a single learned slope (Eq. 1); the reconstruction PReLU of Eq. 7 is kept.

    Args:
        spatial_dims: 2 (default, as in the paper) or 3.
        in_channels: channels of the interpolated LR input; must equal ``out_channels`` for the global
            residual. Defaults to 1.
        out_channels: channels of the SR output. Defaults to 1.
        features: filters of every hidden convolution. Defaults to 128.
        num_modules: number N of multi-scale residual modules. Defaults to 4.
        scale_kernel_sizes: odd kernel sizes of the scale branches of each module. Defaults to ``(7, 5)``.
        kernel_size: odd kernel size of all other convolutions. Defaults to 3.

    Example::

        net = MSRNTV(spatial_dims=2)
        sr = net(torch.rand(64, 1, 31, 31))  # (64, 1, 31, 31)

    Note:
        The input is the LR image bicubic-interpolated onto the HR grid, (B, C, H, W[, D]), any size; the
        output has the same shape. Train with :class:`pipeline.losses.L2TVLoss`.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        features: int = 128,
        num_modules: int = 4,
        scale_kernel_sizes: Sequence[int] = (7, 5),
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        check_positive_ints(
            in_channels=in_channels, out_channels=out_channels, features=features, num_modules=num_modules
        )
        check_odd_kernels(scale_kernel_sizes=scale_kernel_sizes, kernel_size=kernel_size)
        if in_channels != out_channels:
            raise ValueError(
                f"the global residual needs in_channels == out_channels, got {in_channels} and {out_channels}."
            )
        self.shallow = nn.Sequential(
            conv(spatial_dims, in_channels, features, kernel_size, act="prelu"),
            conv(spatial_dims, features, features, kernel_size, act="prelu"),
        )
        self.body = nn.ModuleList(
            MultiScaleResidualModule(spatial_dims, features, scale_kernel_sizes, kernel_size)
            for _ in range(num_modules)
        )
        self.recon = conv(spatial_dims, features, out_channels, kernel_size, act="prelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, C, *S) interpolated LR to (B, C, *S) SR = reconstructed residual + input."""
        f0 = self.shallow(x)
        f = f0
        for module in self.body:
            f = module(f) + f0
        return self.recon(f) + x
