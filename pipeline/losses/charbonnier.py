# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Charbonnier loss, a differentiable robust L1 (LapSRN; the RRLSRN paper)."""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

__all__ = ["CharbonnierLoss"]


class CharbonnierLoss(_Loss):
    r"""Charbonnier penalty :math:`\rho(d) = \sqrt{d^2 + \epsilon^2}` of the voxel-wise difference.

    Lai et al., "Deep Laplacian pyramid networks for fast and accurate super-resolution", CVPR 2017;
    Song et al., the RRLSRN paper, Eq. 2-4 with :math:`\epsilon = 10^{-3}`.

    Args:
        eps: :math:`\epsilon > 0`; the loss behaves like L1 for :math:`|d| \gg \epsilon`. Defaults to 1e-3.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (element-wise, input's shape).

    Example::

        loss = CharbonnierLoss()(sr, hr)  # sr, hr: (B, C, H, W[, D])

    Note:
        ``input`` and ``target`` must have the same shape. The minimum (identical images) is ``eps``,
        not 0.
    """

    def __init__(self, eps: float = 1e-3, reduction: str = "mean") -> None:
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}.")
        super().__init__(reduction=reduction)
        self.eps = eps

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Charbonnier loss of ``input - target``, both (B, C, *S)."""
        if input.shape != target.shape:
            raise ValueError(f"input and target shapes differ: {tuple(input.shape)} vs {tuple(target.shape)}.")
        loss = torch.sqrt((input - target) ** 2 + self.eps**2)
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss
