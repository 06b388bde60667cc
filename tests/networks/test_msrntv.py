# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import pytest
import torch

from pipeline.networks import MSRNTV

SMALL = {"features": 6, "num_modules": 2}


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_shape_and_backward(spatial_dims):
    net = MSRNTV(spatial_dims, **SMALL)
    shape = (2, 1) + (9, 8, 7)[:spatial_dims]
    out = net(torch.rand(shape))
    assert out.shape == shape
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_default_shape_and_configuration():
    net = MSRNTV()
    assert len(net.body) == 4 and net.shallow[0].conv.out_channels == 128
    assert [s.conv.kernel_size for s in net.body[0].scales] == [(7, 7), (5, 5)]
    x = torch.rand(1, 1, 12, 12)
    assert net(x).shape == x.shape


def test_global_residual():
    """With a zeroed reconstruction layer the network returns its input (PReLU(0) = 0)."""
    net = MSRNTV(2, **SMALL)
    with torch.no_grad():
        net.recon.conv.weight.zero_()
        net.recon.conv.bias.zero_()
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(net(x), x)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_script(spatial_dims):
    net = MSRNTV(spatial_dims, **SMALL).eval()
    x = torch.rand((1, 1) + (6,) * spatial_dims)
    torch.testing.assert_close(torch.jit.script(net)(x), net(x))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"spatial_dims": 1},
        {"in_channels": 1, "out_channels": 2},
        {"features": 0},
        {"num_modules": 0},
        {"scale_kernel_sizes": (7, 4)},
        {"kernel_size": 2},
    ],
)
def test_ill_arg(kwargs):
    with pytest.raises(ValueError):
        MSRNTV(**kwargs)
