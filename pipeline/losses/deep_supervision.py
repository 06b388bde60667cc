# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Deep-supervision loss for multi-output networks such as MRLNet."""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

__all__ = ["DeepSupervisionMSELoss"]


class DeepSupervisionMSELoss(_Loss):
    r"""Sum of half mean squared errors of a fused output and its intermediate outputs.

    The MRLNet paper, Eqs. 5-7: :math:`L = \sum_{i=1}^{N} \tfrac12 \|y - \hat y_i\|^2 + \tfrac12 \|y - \hat y\|^2`,
    with each squared norm taken as a mean squared error over the batch and voxels (so the loss does not
    scale with patch size):

    .. math::

        L = \tfrac12 \operatorname{MSE}(\hat y, y) + \sum_{i=1}^{N} \tfrac12 \operatorname{MSE}(\hat y_i, y)

    Example::

        net = MRLNet(scale_factor=2).train()
        loss = DeepSupervisionMSELoss()(net(lr), hr)  # net(lr): (B, N+1, C, H, W), hr: (B, C, H, W)

    Note:
        ``input`` is the stacked output of :class:`pipeline.networks.MRLNet` in training mode,
        (B, N+1, C, *S) with the fused output first; ``target`` is (B, C, *S). A plain (B, C, *S) prediction
        is rejected: use ``torch.nn.MSELoss`` for it.
    """

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Deep-supervision loss of ``input`` (B, N+1, C, *S) against ``target`` (B, C, *S)."""
        if input.ndim != target.ndim + 1 or input.shape[:1] + input.shape[2:] != target.shape:
            raise ValueError(
                f"expected input (B, N+1, C, *S) stacked around target (B, C, *S), "
                f"got {tuple(input.shape)} and {tuple(target.shape)}."
            )
        squared_error = (input - target.unsqueeze(1)) ** 2
        return 0.5 * squared_error.flatten(start_dim=2).mean(dim=(0, 2)).sum()
