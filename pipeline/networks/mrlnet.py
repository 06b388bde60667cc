# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""MRLNet: multi-resolution learning network with residual units and deconvolution (the MRLNet paper)."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.networks.layers import (
    check_odd_kernels,
    check_positive_ints,
    check_spatial_dims,
    conv,
    upsample_transposed_conv,
)

__all__ = ["MRLNet"]


class MRLNet(nn.Module):
    """Multi-resolution learning CNN: residual units in LR space, multi-resolution upsampling, learned fusion.

    "A convolutional neural network with multi-resolution learning for MR image super-resolution" (the MRLNet paper):

    - ``U_0 = conv3x3(x)`` (``features`` = 128 filters);
    - ``N`` = 9 residual units ``U_i = U_0 + conv(ReLU(conv(ReLU(U_{i-1}))))`` (two 3x3 convs, 128 filters);
    - one deconvolution layer upsamples each ``U_i`` together with the LR input:
      ``y_i = f_dec(U_i) + f_dec(x)``;
    - multi-resolution learning: ``y = sum_i w_i * y_i`` with learned scalars ``w_i`` (initialised to 1/N).

    Choices where the paper is silent (documented here): the residual branch is pre-activated
    (ReLU -> conv -> ReLU -> conv, as in the identity-mapping ResNet / DRRN unit that the paper's Eq. 2
    follows) so ``U_i`` stays signed; ``U_0`` is a plain convolution. The deconvolution layer is 9x9
    (FSRCNN-style) with stride ``scale_factor`` and output padding so the output is exactly
    ``scale_factor`` times the input. The single deconvolution layer over the N+1 inputs of the paper is
    implemented as two transposed convolutions, one on ``U_i`` (shared over i) and one on ``x`` (computed
    once), which by linearity is the same layer applied to the concatenation ``[U_i, x]``.

    Args:
        spatial_dims: 2 (default, as in the paper) or 3.
        scale_factor: integer upsampling factor f >= 2 (the paper reports 2, 3 and 4). Defaults to 2.
        in_channels: channels of the LR input. Defaults to 1.
        out_channels: channels of the SR output. Defaults to 1.
        features: filters of every convolution. Defaults to 128.
        num_units: number N of residual units. Defaults to 9.
        kernel_size: odd kernel size of the convolutions. Defaults to 3.
        deconv_kernel_size: kernel size of the deconvolution layer. Defaults to 9.
        deep_supervision: in training mode, also return the N intermediate outputs (see Note).
            Defaults to True.

    Example::

        net = MRLNet(spatial_dims=2, scale_factor=2)
        net.eval()
        sr = net(torch.rand(2, 1, 14, 14))   # (2, 1, 28, 28)
        net.train()
        out = net(torch.rand(2, 1, 14, 14))  # (2, 10, 1, 28, 28): out[:, 0] = y, out[:, i] = y_i

    Note:
        Input: LR image on the LR grid, (B, C_in, H, W[, D]), any size. In eval mode (or with
        ``deep_supervision=False``) the output is the fused SR image ``y``, (B, C_out, f*H, f*W[, f*D]).
        In training mode with ``deep_supervision=True`` the output is the stack ``[y, y_1, ..., y_N]`` along a
        new dim 1, (B, N+1, C_out, f*H, f*W[, f*D]) (one tensor, as MONAI's ``DynUNet`` does, so the module
        stays TorchScript-compatible); :class:`pipeline.losses.DeepSupervisionMSELoss` takes it directly.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        scale_factor: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        features: int = 128,
        num_units: int = 9,
        kernel_size: int = 3,
        deconv_kernel_size: int = 9,
        deep_supervision: bool = True,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        check_positive_ints(
            in_channels=in_channels,
            out_channels=out_channels,
            features=features,
            num_units=num_units,
            deconv_kernel_size=deconv_kernel_size,
        )
        check_odd_kernels(kernel_size=kernel_size)
        if not isinstance(scale_factor, int) or scale_factor < 2:
            raise ValueError(f"scale_factor must be an int >= 2, got {scale_factor!r}.")
        self.deep_supervision = deep_supervision
        self.head = conv(spatial_dims, in_channels, features, kernel_size)
        self.units = nn.ModuleList(
            nn.Sequential(
                nn.ReLU(),
                conv(spatial_dims, features, features, kernel_size, act="relu"),
                conv(spatial_dims, features, features, kernel_size),
            )
            for _ in range(num_units)
        )
        self.deconv_features = upsample_transposed_conv(
            spatial_dims, features, out_channels, scale_factor, deconv_kernel_size
        )
        self.deconv_input = upsample_transposed_conv(
            spatial_dims, in_channels, out_channels, scale_factor, deconv_kernel_size, bias=False
        )
        self.fusion_weights = nn.Parameter(torch.full((num_units,), 1.0 / num_units))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, *S) LR -> (B, C_out, *(f*S)) in eval mode, (B, N+1, C_out, *(f*S)) when deeply supervised."""
        u0 = self.head(x)
        up_x = self.deconv_input(x)
        u = u0
        outputs: list[torch.Tensor] = []
        for unit in self.units:
            u = u0 + unit(u)
            outputs.append(self.deconv_features(u) + up_x)
        stacked = torch.stack(outputs, dim=1)
        fused = (stacked.movedim(1, -1) * self.fusion_weights).sum(-1)
        if self.training and self.deep_supervision:
            return torch.cat([fused.unsqueeze(1), stacked], dim=1)
        return fused
