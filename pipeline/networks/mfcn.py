# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""MFCN: multi-scale fusion convolution network (the MFCN paper)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pipeline.networks.layers import check_odd_kernels, check_positive_ints, check_spatial_dims, conv

__all__ = ["MFU", "MFCN"]


class MFU(nn.Module):
    """Multi-scale fusion unit: ``x_{i+1} = ReLU(conv_main(x_i)) + sum_j SP_j(x_i)``.

    Each sub-path ``SP_j`` is ``subpath_layers`` convolutions of kernel ``subpath_kernel_sizes[j]`` from the
    unit's input to ``out_channels``, with ReLU between its layers but none after the last one: the paper
    (Fig. 13) found that removing the ReLU before the fusion (sum) layer works better.

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of ``x_i``.
        out_channels: filters of the main path (and of every sub-path, so that they can be summed).
        kernel_size: odd kernel size of the main-path convolution.
        subpath_kernel_sizes: odd kernel size of each sub-path; its length is the number of sub-paths J.
        subpath_layers: convolutions per sub-path.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        subpath_kernel_sizes: Sequence[int] = (1,),
        subpath_layers: int = 1,
    ) -> None:
        super().__init__()
        self.main = conv(spatial_dims, in_channels, out_channels, kernel_size, act="relu")
        self.subpaths = nn.ModuleList()
        for k in subpath_kernel_sizes:
            layers, c_in = [], in_channels
            for i in range(subpath_layers):
                act = None if i == subpath_layers - 1 else "relu"
                layers.append(conv(spatial_dims, c_in, out_channels, k, act=act))
                c_in = out_channels
            self.subpaths.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, *S) -> (B, C_out, *S)."""
        out = self.main(x)
        for subpath in self.subpaths:
            out = out + subpath(x)
        return out


class MFCN(nn.Module):
    """Multi-scale fusion convolution network for MR super-resolution.

    Liu, Wu, Yu, Tang, Zhang, Zhou, "Fusing multi-scale information in convolution network for MR image
    super-resolution reconstruction", BioMedical Engineering OnLine 17:114 (2018).

    A stack of :class:`MFU` units followed by a single-kernel reconstruction convolution. The defaults are
    the paper's baseline MFCN_BL: two MFUs with main-path kernels 9 and 5 and 32 and 64 filters, one 1x1
    sub-path per MFU, reconstruction kernel 5. ``subpath_kernel_sizes=(3,)`` gives MFCN_S3 (3x3 sub-paths,
    better in the paper's Fig. 11), ``subpath_layers=2`` gives MFCN_L2. All convolutions are zero-padded
    ("same"), so the output has the input's size.

    Args:
        spatial_dims: 2 (default, as in the paper) or 3.
        in_channels: channels of the interpolated LR input. Defaults to 1.
        out_channels: channels of the SR output. Defaults to 1.
        channels: main-path filters of each MFU; its length is the number of MFUs. Defaults to ``(32, 64)``.
        kernel_sizes: odd main-path kernel size of each MFU. Defaults to ``(9, 5)``.
        subpath_kernel_sizes: odd kernel size of each sub-path of every MFU (length = sub-paths per MFU).
            Defaults to ``(1,)``.
        subpath_layers: convolutions per sub-path. Defaults to 1.
        recon_kernel_size: odd kernel size of the reconstruction convolution. Defaults to 5.

    Example::

        net = MFCN(spatial_dims=2)                                  # MFCN_BL
        net_s3 = MFCN(spatial_dims=2, subpath_kernel_sizes=(3,))    # MFCN_S3
        sr = net(torch.rand(32, 1, 33, 33))                         # (32, 1, 33, 33)

    Note:
        The input is the LR image interpolated (bicubic in the paper) onto the HR grid, shape
        (B, C_in, H, W[, D]); any spatial size works and the output is (B, C_out, H, W[, D]).
        The paper's Caffe implementation is not public; "same" padding is this project's choice.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: Sequence[int] = (32, 64),
        kernel_sizes: Sequence[int] = (9, 5),
        subpath_kernel_sizes: Sequence[int] = (1,),
        subpath_layers: int = 1,
        recon_kernel_size: int = 5,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        check_positive_ints(
            in_channels=in_channels, out_channels=out_channels, channels=channels, subpath_layers=subpath_layers
        )
        check_odd_kernels(
            kernel_sizes=kernel_sizes, subpath_kernel_sizes=subpath_kernel_sizes, recon_kernel_size=recon_kernel_size
        )
        if len(channels) != len(kernel_sizes):
            raise ValueError(f"channels and kernel_sizes need one entry per MFU, got {channels} and {kernel_sizes}.")
        units = []
        c_in = in_channels
        for c_out, k in zip(channels, kernel_sizes):
            units.append(MFU(spatial_dims, c_in, c_out, k, subpath_kernel_sizes, subpath_layers))
            c_in = c_out
        self.units = nn.Sequential(*units)
        self.recon = conv(spatial_dims, c_in, out_channels, recon_kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, C_in, *S) interpolated LR to (B, C_out, *S) SR."""
        return self.recon(self.units(x))
