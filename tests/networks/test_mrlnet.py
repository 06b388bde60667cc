# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import pytest
import torch

from pipeline.networks import MRLNet

SMALL = {"features": 8, "num_units": 3}


@pytest.mark.parametrize("spatial_dims,scale", [(2, 2), (2, 3), (2, 4), (3, 2), (3, 3)])
def test_shapes_train_and_eval(spatial_dims, scale):
    net = MRLNet(spatial_dims, scale, **SMALL)
    lr_shape = (2, 1) + (5, 6, 7)[:spatial_dims]
    hr_spatial = tuple(scale * s for s in lr_shape[2:])
    x = torch.rand(lr_shape)
    out = net.train()(x)
    assert out.shape == (2, 3 + 1, 1, *hr_spatial)
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())
    assert net.eval()(x).shape == (2, 1, *hr_spatial)
    assert MRLNet(spatial_dims, scale, deep_supervision=False, **SMALL).train()(x).shape == (2, 1, *hr_spatial)


def test_fused_output_is_weighted_sum_of_intermediates():
    net = MRLNet(2, 2, **SMALL).train()
    with torch.no_grad():
        net.fusion_weights.copy_(torch.tensor([0.5, -1.0, 2.0]))
        out = net(torch.rand(1, 1, 6, 6))
    expected = 0.5 * out[:, 1] - out[:, 2] + 2.0 * out[:, 3]
    torch.testing.assert_close(out[:, 0], expected)


def test_default_configuration():
    net = MRLNet()
    assert len(net.units) == 9
    assert net.head.conv.out_channels == 128 and net.head.conv.kernel_size == (3, 3)
    torch.testing.assert_close(net.fusion_weights.detach(), torch.full((9,), 1 / 9))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_script(spatial_dims):
    net = MRLNet(spatial_dims, 2, **SMALL)
    scripted = torch.jit.script(net)
    x = torch.rand((1, 1) + (4,) * spatial_dims)
    torch.testing.assert_close(scripted.train()(x), net.train()(x))
    torch.testing.assert_close(scripted.eval()(x), net.eval()(x))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"spatial_dims": 1},
        {"scale_factor": 1},
        {"scale_factor": 2.0},
        {"features": 0},
        {"num_units": 0},
        {"kernel_size": 2},
        {"deconv_kernel_size": 0},
    ],
)
def test_ill_arg(kwargs):
    with pytest.raises(ValueError):
        MRLNet(**kwargs)
