# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.losses import CharbonnierGDLLoss, CharbonnierLoss, GradientDifferenceLoss, L2TVLoss, TotalVariationLoss


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_l2_tv(spatial_dims):
    input, target = torch.rand((2, 1) + (5,) * spatial_dims), torch.rand((2, 1) + (5,) * spatial_dims)
    expected = nn.MSELoss()(input, target) + 0.1 * TotalVariationLoss()(input)
    torch.testing.assert_close(L2TVLoss(tv_weight=0.1)(input, target), expected)
    torch.testing.assert_close(L2TVLoss(tv_weight=0.0)(input, target), nn.MSELoss()(input, target))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_charbonnier_gdl(spatial_dims):
    input, target = torch.rand((2, 1) + (5,) * spatial_dims), torch.rand((2, 1) + (5,) * spatial_dims)
    expected = CharbonnierLoss()(input, target) + GradientDifferenceLoss()(input, target)
    torch.testing.assert_close(CharbonnierGDLLoss()(input, target), expected)


@pytest.mark.parametrize(
    "build",
    [
        lambda: L2TVLoss(tv_weight=-1.0),
        lambda: CharbonnierGDLLoss(gdl_weight=-0.5),
        lambda: CharbonnierGDLLoss(eps=0.0),
        lambda: CharbonnierGDLLoss(gdl_alpha=0.0),
    ],
)
def test_ill_arg(build):
    with pytest.raises(ValueError):
        build()


def test_l2_tv_shape_mismatch():
    with pytest.raises(ValueError):
        L2TVLoss()(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 5))
