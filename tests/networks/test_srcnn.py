# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import pytest
import torch

from pipeline.networks import SRCNN

SHAPE_CASES = [
    ({"spatial_dims": 2}, (2, 1, 17, 20)),
    ({"spatial_dims": 3, "channels": (4, 4)}, (1, 1, 9, 10, 11)),
    ({"spatial_dims": 2, "in_channels": 2, "out_channels": 3}, (2, 2, 12, 12)),
]


@pytest.mark.parametrize("kwargs,shape", SHAPE_CASES)
def test_shape_and_backward(kwargs, shape):
    net = SRCNN(**kwargs)
    out = net(torch.rand(shape))
    assert out.shape == (shape[0], net.layers[-1].conv.out_channels, *shape[2:])
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_default_is_9_5_5():
    net = SRCNN()
    assert [layer.conv.kernel_size for layer in net.layers] == [(9, 9), (5, 5), (5, 5)]
    assert [layer.conv.out_channels for layer in net.layers] == [64, 32, 1]
    weights = sum(layer.conv.weight.numel() for layer in net.layers)
    assert weights == 57_184  # Dong et al. (2016), 9-5-5


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_script(spatial_dims):
    net = SRCNN(spatial_dims, channels=(4, 4)).eval()
    x = torch.rand((1, 1) + (10,) * spatial_dims)
    torch.testing.assert_close(torch.jit.script(net)(x), net(x))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"spatial_dims": 1},
        {"in_channels": 0},
        {"channels": (64,)},
        {"kernel_sizes": (9, 4, 5)},
        {"kernel_sizes": (9, 5)},
    ],
)
def test_ill_arg(kwargs):
    with pytest.raises(ValueError):
        SRCNN(**kwargs)
