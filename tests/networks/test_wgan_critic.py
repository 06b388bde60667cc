# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import pytest
import torch

from pipeline.networks import WGANCritic

SMALL = {"channels": (4, 4, 8), "strides": (1, 2, 2), "dense_features": 8}


@pytest.mark.parametrize("spatial_dims,side", [(2, 16), (3, 12), (3, 9)])
def test_shape_and_backward(spatial_dims, side):
    net = WGANCritic(spatial_dims, **SMALL)
    out = net(torch.rand((3, 1) + (side,) * spatial_dims))
    assert out.shape == (3, 1)
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_default_is_srgan_discriminator_with_layer_norm():
    net = WGANCritic()
    assert [b.conv.out_channels for b in net.features] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [b.conv.stride[0] for b in net.features] == [1, 2, 1, 2, 1, 2, 1, 2]
    norms = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 7 and all(n.num_groups == 1 for n in norms)
    assert not any(isinstance(m, (torch.nn.BatchNorm3d, torch.nn.Sigmoid)) for m in net.modules())
    assert net(torch.rand(2, 1, 16, 16, 16)).shape == (2, 1)


def test_layer_norm_is_per_sample():
    """A sample's score does not depend on the other samples of the batch (needed by the gradient penalty)."""
    net = WGANCritic(2, **SMALL).train()
    x = torch.rand(4, 1, 16, 16)
    torch.testing.assert_close(net(x)[:1], net(x[:1]))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_script(spatial_dims):
    net = WGANCritic(spatial_dims, **SMALL).eval()
    x = torch.rand((2, 1) + (8,) * spatial_dims)
    torch.testing.assert_close(torch.jit.script(net)(x), net(x))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"spatial_dims": 1},
        {"channels": (64, 64), "strides": (1,)},
        {"channels": ()},
        {"strides": (1, 2, 1, 2, 1, 2, 1, 0)},
        {"dense_features": 0},
        {"negative_slope": -0.1},
    ],
)
def test_ill_arg(kwargs):
    with pytest.raises(ValueError):
        WGANCritic(**kwargs)
