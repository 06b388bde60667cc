# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""The papers' composite training objectives: L2 + alpha * TV (MSRN-TV), Charbonnier + GDL (RRLSRN)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.loss import _Loss

from pipeline.losses.charbonnier import CharbonnierLoss
from pipeline.losses.gradient import GradientDifferenceLoss, TotalVariationLoss

__all__ = ["L2TVLoss", "CharbonnierGDLLoss"]


def _check_weight(name: str, value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}.")


class L2TVLoss(_Loss):
    r"""MSRNTV's objective :math:`L = \operatorname{MSE}(\hat y, y) + \alpha \, TV(\hat y)` (MSRN-TV paper, Eqs. 17-19).

    :math:`TV` is :class:`pipeline.losses.TotalVariationLoss` (mean of squared forward differences, summed
    over spatial axes). The value of :math:`\alpha` cannot be read from the OCR'd paper; the default 1e-3
    keeps the TV term a small regulariser next to the MSE of intensities normalised to about [0, 1].

    Args:
        tv_weight: :math:`\alpha \ge 0`. Defaults to 1e-3.

    Example::

        loss = L2TVLoss(tv_weight=1e-3)(sr, hr)  # (B, C, H, W[, D])
    """

    def __init__(self, tv_weight: float = 1e-3) -> None:
        _check_weight("tv_weight", tv_weight)
        super().__init__()
        self.tv_weight = tv_weight
        self.mse = nn.MSELoss()
        self.tv = TotalVariationLoss()

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of ``input`` against ``target``, both (B, C, *S)."""
        if input.shape != target.shape:
            raise ValueError(f"input and target shapes differ: {tuple(input.shape)} vs {tuple(target.shape)}.")
        return self.mse(input, target) + self.tv_weight * self.tv(input)


class CharbonnierGDLLoss(_Loss):
    r"""RRLSRN's objective :math:`L = L_{Charbonnier} + w \, L_{gdl}` (the RRLSRN paper, Eq. 6, where w = 1).

    Args:
        eps: Charbonnier :math:`\epsilon`. Defaults to 1e-3.
        gdl_weight: :math:`w \ge 0`. Defaults to 1.
        gdl_alpha: GDL exponent. Defaults to 2.

    Example::

        loss = CharbonnierGDLLoss()(sr, hr)  # (B, C, H, W[, D])
    """

    def __init__(self, eps: float = 1e-3, gdl_weight: float = 1.0, gdl_alpha: float = 2.0) -> None:
        _check_weight("gdl_weight", gdl_weight)
        super().__init__()
        self.gdl_weight = gdl_weight
        self.charbonnier = CharbonnierLoss(eps=eps)
        self.gdl = GradientDifferenceLoss(alpha=gdl_alpha)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of ``input`` against ``target``, both (B, C, *S)."""
        return self.charbonnier(input, target) + self.gdl_weight * self.gdl(input, target)
