# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import math

import pytest
import torch

from pipeline.losses import CharbonnierLoss


@pytest.mark.parametrize("shape", [(2, 1, 3, 4), (1, 2, 3, 3, 3)])
def test_known_difference(shape):
    """A constant difference d gives sqrt(d^2 + eps^2) at every voxel."""
    target = torch.rand(shape)
    d = 0.5
    expected = math.sqrt(d**2 + 1e-6)
    torch.testing.assert_close(CharbonnierLoss()(target + d, target), torch.tensor(expected))
    n = math.prod(shape)
    torch.testing.assert_close(CharbonnierLoss(reduction="sum")(target + d, target), torch.tensor(n * expected))
    assert CharbonnierLoss(reduction="none")(target + d, target).shape == shape


def test_hand_computed_mixed_values():
    input = torch.tensor([[[[0.0, 3.0], [-4.0, 1.0]]]])
    target = torch.zeros_like(input)
    eps = 1.0
    expected = (1.0 + math.sqrt(10.0) + math.sqrt(17.0) + math.sqrt(2.0)) / 4
    torch.testing.assert_close(CharbonnierLoss(eps=eps)(input, target), torch.tensor(expected))


def test_identical_images_give_eps_and_gradients_flow():
    x = torch.rand(1, 1, 4, 4, requires_grad=True)
    loss = CharbonnierLoss(eps=1e-3)(x, x.detach())
    torch.testing.assert_close(loss, torch.tensor(1e-3))
    loss.backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("kwargs", [{"eps": 0.0}, {"eps": -1e-3}, {"reduction": "max"}])
def test_ill_arg(kwargs):
    with pytest.raises(ValueError):
        CharbonnierLoss(**kwargs)


def test_shape_mismatch():
    with pytest.raises(ValueError):
        CharbonnierLoss()(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 5))
