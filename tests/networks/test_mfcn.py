# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import pytest
import torch

from pipeline.networks import MFCN, MFU

SHAPE_CASES = [
    ({"spatial_dims": 2}, (2, 1, 33, 33)),
    ({"spatial_dims": 2, "subpath_kernel_sizes": (3,)}, (2, 1, 16, 19)),
    ({"spatial_dims": 3, "channels": (4, 6), "subpath_kernel_sizes": (1, 3), "subpath_layers": 2}, (1, 1, 9, 8, 7)),
]


@pytest.mark.parametrize("kwargs,shape", SHAPE_CASES)
def test_shape_and_backward(kwargs, shape):
    net = MFCN(**kwargs)
    out = net(torch.rand(shape))
    assert out.shape == shape
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_default_is_mfcn_bl():
    net = MFCN()
    assert len(net.units) == 2
    assert [u.main.conv.kernel_size for u in net.units] == [(9, 9), (5, 5)]
    assert [u.main.conv.out_channels for u in net.units] == [32, 64]
    assert [[sp[0].conv.kernel_size for sp in u.subpaths] for u in net.units] == [[(1, 1)], [(1, 1)]]
    assert net.recon.conv.kernel_size == (5, 5) and net.recon.conv.out_channels == 1


def test_mfu_fusion_without_relu_on_subpath():
    """x_{i+1} = ReLU(conv_main(x_i)) + SP(x_i): the sub-path can contribute negative values."""
    unit = MFU(2, 1, 2, 3, subpath_kernel_sizes=(1,))
    with torch.no_grad():
        unit.main.conv.weight.zero_()
        unit.main.conv.bias.fill_(-1.0)  # ReLU(-1) = 0
        unit.subpaths[0][0].conv.weight.fill_(-2.0)
        unit.subpaths[0][0].conv.bias.zero_()
    x = torch.ones(1, 1, 4, 4)
    torch.testing.assert_close(unit(x), torch.full((1, 2, 4, 4), -2.0))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_script(spatial_dims):
    net = MFCN(spatial_dims, channels=(4, 4), subpath_kernel_sizes=(1, 3)).eval()
    x = torch.rand((1, 1) + (10,) * spatial_dims)
    torch.testing.assert_close(torch.jit.script(net)(x), net(x))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"spatial_dims": 4},
        {"channels": (32,)},
        {"channels": (32, 0)},
        {"kernel_sizes": (8, 5)},
        {"subpath_kernel_sizes": ()},
        {"subpath_kernel_sizes": (2,)},
        {"subpath_layers": 0},
        {"recon_kernel_size": 4},
    ],
)
def test_ill_arg(kwargs):
    with pytest.raises(ValueError):
        MFCN(**kwargs)
