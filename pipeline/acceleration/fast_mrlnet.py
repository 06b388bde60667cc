# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""MRLNet for inference: one deconvolution instead of N, by linearity.

:class:`pipeline.networks.MRLNet` outputs ``y = sum_i w_i (T(U_i) + b + T_x(x))``, where ``T`` is the
shared deconvolution (bias ``b``) and ``T_x`` the input's. ``T`` is linear, so

    y = T(sum_i w_i U_i) + b + (W - 1) b + W T_x(x),   W = sum_i w_i,

i.e. one deconvolution of the weighted sum of the units' outputs instead of N = 9. A 9x9 stride-2
deconvolution to one channel runs at about 12 GFLOP/s in oneDNN on 2 cores, so the nine of them
took a third of MRLNet's inference time. The intermediate outputs ``y_i`` (deep supervision) are
not formed: inference only.

Under reduced-precision autocast the layers that carry the image itself stay float32
(:class:`pipeline.acceleration.Float32Path`): the first convolution (so the residual stream ``U_i``
accumulates in float32; only the units' convolutions run in bf16), the two deconvolutions and the
final sum. Measured on a synthetic test volume against fp32: whole network in bf16 -0.05 dB PSNR,
also the final deconvolution in float32 -0.08 dB, with the first convolution too +0.003 dB.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.acceleration.float32_path import Float32Path
from pipeline.networks.mrlnet import MRLNet

__all__ = ["FastMRLNet"]


class FastMRLNet(nn.Module):
    """Inference-only MRLNet sharing the trained network's layers (see the module docstring).

    Args:
        network: a trained :class:`MRLNet`.
    """

    def __init__(self, network: MRLNet) -> None:
        super().__init__()
        self.head = Float32Path(network.head)
        self.units = network.units
        self.deconv_features = Float32Path(network.deconv_features)
        self.deconv_input = Float32Path(network.deconv_input)
        self.fusion_weights = network.fusion_weights
        self.deconv_bias = network.deconv_features.conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, *S) LR -> (B, C_out, *(f*S)), equal to ``MRLNet.eval()(x)`` up to rounding."""
        weights = self.fusion_weights.detach().float().tolist()
        u0 = self.head(x)
        u, weighted = u0, None
        for weight, unit in zip(weights, self.units):
            u = u0 + unit(u)
            weighted = u * weight if weighted is None else weighted.add_(u, alpha=weight)
        total = sum(weights)
        out = self.deconv_input(x).mul_(total).add_(self.deconv_features(weighted))  # float32
        if self.deconv_bias is not None:
            shape = (1, -1) + (1,) * (out.dim() - 2)
            out = out.add_(self.deconv_bias.view(shape).float(), alpha=total - 1.0)
        return out
