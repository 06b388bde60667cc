# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Keep the layers that carry the image itself in float32 under reduced-precision autocast.

An SR network adds fine detail to an image that is mostly its input, upsampled. bf16 keeps 8 bits
of mantissa (relative error 0.4 %), harmless for the detail but not for the image: when the image
path of MRLNet (the input's deconvolution) ran in bf16 the output lost 0.05-0.07 dB PSNR against
fp32 on a test volume; kept in float32, with the detail branches in bf16, it lost none.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Float32Path"]


class Float32Path(nn.Module):
    """Run ``module`` in float32 with autocast disabled, whatever the surrounding autocast says.

    Args:
        module: the layer(s) on the image path (e.g. an interpolating transposed convolution).
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *S) -> ``module(x)`` computed and returned in float32."""
        with torch.autocast(x.device.type, enabled=False):
            return self.module(x.float())
