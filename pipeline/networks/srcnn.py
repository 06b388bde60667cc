# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""SRCNN: the three-layer super-resolution CNN used as the common baseline by every seed paper."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pipeline.networks.layers import check_odd_kernels, check_positive_ints, check_spatial_dims, conv

__all__ = ["SRCNN"]


class SRCNN(nn.Module):
    """SRCNN (patch extraction -> non-linear mapping -> reconstruction) in 2D or 3D.

    Dong, Loy, He, Tang, "Image super-resolution using deep convolutional networks", IEEE TPAMI 38 (2016)
    295-307. The default is their 9-5-5 network with 64 and 32 filters: ``conv9(64) -> ReLU -> conv5(32) ->
    ReLU -> conv5(out_channels)``. Unlike the original (valid convolutions), every layer is zero-padded
    so the output keeps the input's size. 3D is the extension of Pham et al. (ISBI 2017).

    Args:
        spatial_dims: 2 (default, slice-wise) or 3.
        in_channels: channels of the interpolated LR input. Defaults to 1.
        out_channels: channels of the SR output. Defaults to 1.
        channels: filters of the first two layers. Defaults to ``(64, 32)``.
        kernel_sizes: odd kernel sizes of the three layers. Defaults to ``(9, 5, 5)``.

    Example::

        net = SRCNN(spatial_dims=2)
        sr = net(torch.rand(4, 1, 33, 33))  # (4, 1, 33, 33)

    Note:
        The input is the LR image already interpolated onto the HR grid, shape (B, C_in, H, W[, D]); any
        spatial size works and the output is (B, C_out, H, W[, D]).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: Sequence[int] = (64, 32),
        kernel_sizes: Sequence[int] = (9, 5, 5),
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        check_positive_ints(in_channels=in_channels, out_channels=out_channels, channels=channels)
        check_odd_kernels(kernel_sizes=kernel_sizes)
        if len(channels) != 2 or len(kernel_sizes) != 3:
            raise ValueError(f"SRCNN needs 2 channel counts and 3 kernel sizes, got {channels} and {kernel_sizes}.")
        self.layers = nn.Sequential(
            conv(spatial_dims, in_channels, channels[0], kernel_sizes[0], act="relu"),
            conv(spatial_dims, channels[0], channels[1], kernel_sizes[1], act="relu"),
            conv(spatial_dims, channels[1], out_channels, kernel_sizes[2]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, C_in, *S) interpolated LR to (B, C_out, *S) SR."""
        return self.layers(x)
