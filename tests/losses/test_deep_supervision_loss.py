# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import pytest
import torch

from pipeline.losses import DeepSupervisionMSELoss
from pipeline.networks import MRLNet


def test_hand_computed():
    target = torch.zeros(1, 1, 2, 2)
    # fused output off by 2, intermediates off by 1 and 0
    stacked = torch.stack([target + 2.0, target + 1.0, target], dim=1)
    torch.testing.assert_close(DeepSupervisionMSELoss()(stacked, target), torch.tensor(0.5 * 4 + 0.5 * 1 + 0.0))


def test_with_mrlnet_output():
    net = MRLNet(2, 2, features=4, num_units=3).train()
    lr, hr = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 8, 8)
    out = net(lr)
    loss = DeepSupervisionMSELoss()(out, hr)
    expected = sum(0.5 * torch.mean((out[:, i] - hr) ** 2) for i in range(4))
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert net.fusion_weights.grad is not None


@pytest.mark.parametrize("input_shape", [(1, 1, 8, 8), (1, 3, 1, 8, 7), (2, 3, 1, 8, 8)])
def test_ill_shapes(input_shape):
    with pytest.raises(ValueError):
        DeepSupervisionMSELoss()(torch.rand(input_shape), torch.rand(1, 1, 8, 8))
