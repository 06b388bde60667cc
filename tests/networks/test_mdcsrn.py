# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import pytest
import torch

from pipeline.networks import MDCSRN

SMALL = {"num_blocks": 2, "units_per_block": 2, "growth_rate": 2}


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_shape_and_backward(spatial_dims):
    net = MDCSRN(spatial_dims, **SMALL)
    shape = (2, 1) + (7, 8, 9)[:spatial_dims]
    out = net(torch.rand(shape))
    assert out.shape == shape
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("variant,blocks,units", [("b4u4", 4, 4), ("b8u4", 8, 4), ("b2u3", 2, 3)])
def test_variants(variant, blocks, units):
    net = MDCSRN.from_variant(variant)
    assert len(net.levels) == blocks
    assert all(len(level[1]) == units for level in net.levels)


def test_default_is_b8u4_with_multi_level_dense_connections():
    net = MDCSRN()
    k = 12
    assert len(net.levels) == 8 and net.stem.out_channels == 2 * k
    block_out = 2 * k + 4 * k
    for j, level in enumerate(net.levels):
        compressor_conv = level[0][1]
        assert compressor_conv.kernel_size == (1, 1, 1) and compressor_conv.out_channels == 2 * k
        assert compressor_conv.in_channels == 2 * k + j * block_out  # stem + all earlier blocks
    assert net.combine[1].in_channels == 2 * k + 8 * block_out
    assert isinstance(net.levels[0][1][0][0][0].A, torch.nn.ELU)
    assert isinstance(net.levels[0][1][0][0][0].N, torch.nn.BatchNorm3d)
    x = torch.rand(2, 1, 6, 6, 6)
    assert net(x).shape == x.shape


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_script(spatial_dims):
    net = MDCSRN(spatial_dims, **SMALL).eval()
    x = torch.rand((1, 1) + (5,) * spatial_dims)
    torch.testing.assert_close(torch.jit.script(net)(x), net(x))


@pytest.mark.parametrize(
    "kwargs",
    [{"spatial_dims": 1}, {"num_blocks": 0}, {"units_per_block": 0}, {"growth_rate": 0}, {"bottleneck_factor": -1}],
)
def test_ill_arg(kwargs):
    with pytest.raises(ValueError):
        MDCSRN(**kwargs)


@pytest.mark.parametrize("variant", ["b4", "u4b4", "B4U4", "b4u4x"])
def test_ill_variant(variant):
    with pytest.raises(ValueError):
        MDCSRN.from_variant(variant)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_frozen_norm_statistics_survive_train_and_keep_the_state_dict(spatial_dims):
    frozen = MDCSRN(spatial_dims, freeze_norm_statistics=True, **SMALL).train()
    norms = [m for m in frozen.modules() if isinstance(m, torch.nn.modules.batchnorm._NormBase)]
    assert frozen.training and norms and not any(m.training for m in norms)
    frozen(torch.rand((3, 1) + (6,) * spatial_dims)).mean().backward()
    assert all(float(m.running_mean.abs().max()) == 0.0 for m in norms)  # statistics untouched
    plain = MDCSRN(spatial_dims, **SMALL).train()
    assert all(m.training for m in plain.modules() if isinstance(m, torch.nn.modules.batchnorm._NormBase))
    assert frozen.state_dict().keys() == plain.state_dict().keys()


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_init_as_identity_returns_the_input(spatial_dims):
    net = MDCSRN(spatial_dims, freeze_norm_statistics=True, **SMALL).init_as_identity()
    x = torch.rand((2, 1) + (7,) * spatial_dims)
    torch.testing.assert_close(net(x), x, atol=1e-4, rtol=1e-4)  # BatchNorm's eps: 1 / sqrt(1 + 1e-5)
    torch.testing.assert_close(net.eval()(x), x, atol=1e-4, rtol=1e-4)
    out = net.train()(x)
    out.mean().backward()
    assert net.levels[0][0][1].weight.grad is not None


def test_init_as_identity_needs_matching_channels():
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        MDCSRN(in_channels=2, out_channels=1, **SMALL).init_as_identity()
