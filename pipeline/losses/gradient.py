# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Finite-difference image losses: gradient difference loss (GDL) and total variation, in 2D and 3D."""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

__all__ = ["spatial_differences", "GradientDifferenceLoss", "TotalVariationLoss"]


def spatial_differences(x: torch.Tensor) -> list[torch.Tensor]:
    """Forward differences of ``x`` along every spatial axis of size >= 2 (singleton axes have no gradient).

    Args:
        x: (B, C, *S) with at least one spatial axis of size >= 2.

    Returns:
        one tensor per such axis a, ``x[..., i+1, ...] - x[..., i, ...]`` along a, shaped like ``x`` with
        S_a - 1 along a.
    """
    axes = [axis for axis in range(2, x.ndim) if x.shape[axis] > 1]
    if x.ndim < 3 or not axes:
        raise ValueError(f"expected (B, C, *spatial) with a spatial axis of size >= 2, got shape {tuple(x.shape)}.")
    return [torch.diff(x, dim=axis) for axis in axes]


def _reduce(terms: list[torch.Tensor], reduction: str) -> torch.Tensor:
    """Sum over axes of the per-axis mean (or sum) of ``terms``."""
    if reduction == "mean":
        return torch.stack([t.mean() for t in terms]).sum()
    return torch.stack([t.sum() for t in terms]).sum()


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}.")


class GradientDifferenceLoss(_Loss):
    r"""Gradient difference loss (GDL) over every spatial axis.

    Mathieu, Couprie, LeCun, "Deep multi-scale video prediction beyond mean square error", ICLR 2016;
    The RRLSRN paper, Eq. 5, generalised from the two in-plane axes to all N spatial axes:

    .. math::

        L_{gdl}(\hat y, y) = \sum_{a=1}^{N}
            \operatorname{mean}\big|\,|\partial_a y| - |\partial_a \hat y|\,\big|^{\alpha}

    with forward differences :math:`\partial_a`. With ``reduction="sum"`` the per-axis means are sums
    (the paper's un-normalised Eq. 5).

    Args:
        alpha: exponent :math:`\alpha > 0`. Defaults to 2 (the paper's Eq. 5).
        reduction: ``"mean"`` (default) or ``"sum"``.

    Example::

        loss = GradientDifferenceLoss()(sr, hr)  # sr, hr: (B, C, H, W) or (B, C, H, W, D)

    Note:
        ``input`` and ``target`` must have the same shape (B, C, *S); the loss is 0 when their gradient
        magnitudes agree (e.g. identical images, or images differing by a constant).
    """

    def __init__(self, alpha: float = 2.0, reduction: str = "mean") -> None:
        _check_reduction(reduction)
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}.")
        super().__init__(reduction=reduction)
        self.alpha = alpha

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """GDL between ``input`` and ``target``, both (B, C, *S)."""
        if input.shape != target.shape:
            raise ValueError(f"input and target shapes differ: {tuple(input.shape)} vs {tuple(target.shape)}.")
        terms = [
            torch.abs(d_t.abs() - d_i.abs()) ** self.alpha
            for d_i, d_t in zip(spatial_differences(input), spatial_differences(target))
        ]
        return _reduce(terms, self.reduction)


class TotalVariationLoss(_Loss):
    r"""Squared-gradient total variation of an image over every spatial axis (the MSRN-TV paper, Eq. 18).

    .. math::

        TV(\hat y) = \sum_{a=1}^{N} \operatorname{mean} (\partial_a \hat y)^2

    Seed 002 defines :math:`TV = \sum (\partial_x \hat y)^2 + (\partial_y \hat y)^2` normalised by the number of
    pixels; here each axis's squared forward differences are averaged over their own count (one fewer along
    that axis) and summed over the N spatial axes, so 2D gives the paper's term and 3D adds
    :math:`\partial_z`. ``reduction="sum"`` gives the un-normalised sum.

    Args:
        reduction: ``"mean"`` (default) or ``"sum"``.

    Example::

        tv = TotalVariationLoss()(sr)  # sr: (B, C, H, W[, D])

    Note:
        Unlike the other losses this takes one image (the prediction), not a pair.
    """

    def __init__(self, reduction: str = "mean") -> None:
        _check_reduction(reduction)
        super().__init__(reduction=reduction)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """TV of ``input``, (B, C, *S)."""
        return _reduce([d**2 for d in spatial_differences(input)], self.reduction)
