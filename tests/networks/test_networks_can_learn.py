# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Smoke test: a few dozen Adam steps on one tiny synthetic LR/HR pair reduce each network's training loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.losses import CharbonnierGDLLoss, DeepSupervisionMSELoss, L2TVLoss, WGANGPCriticLoss
from pipeline.networks import MDCSRN, MFCN, MRLNet, MSRNTV, RRLSRN, SRCNN, WGANCritic


def _hr(spatial_dims: int, side: int, batch: int = 2) -> torch.Tensor:
    """Smooth synthetic 'anatomy': blurred random noise in [0, 1], (B, 1, side, ...)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand((batch, 1) + (side,) * spatial_dims, generator=g)
    pool = F.avg_pool2d if spatial_dims == 2 else F.avg_pool3d
    for _ in range(2):
        x = pool(x, 3, stride=1, padding=1, count_include_pad=False)
    return (x - x.amin()) / (x.amax() - x.amin())


def _lr(hr: torch.Tensor, scale: int, on_hr_grid: bool) -> torch.Tensor:
    """Average-pool decimation by ``scale``, optionally interpolated back onto the HR grid."""
    spatial_dims = hr.ndim - 2
    lr = (F.avg_pool2d if spatial_dims == 2 else F.avg_pool3d)(hr, scale)
    if on_hr_grid:
        mode = "bilinear" if spatial_dims == 2 else "trilinear"
        lr = F.interpolate(lr, size=hr.shape[2:], mode=mode, align_corners=False)
    return lr


# (network, the paper's loss, spatial_dims, scale, input on the HR grid)
CASES = [
    pytest.param(lambda: SRCNN(2, channels=(8, 8)), nn.MSELoss(), 2, 2, True, id="srcnn-2d"),
    pytest.param(
        lambda: SRCNN(3, channels=(4, 4), kernel_sizes=(5, 3, 3)), nn.MSELoss(), 3, 2, True, id="srcnn-3d"
    ),
    pytest.param(lambda: MFCN(2, channels=(8, 8), subpath_kernel_sizes=(3,)), nn.MSELoss(), 2, 2, True, id="mfcn"),
    pytest.param(
        lambda: MRLNet(2, 2, features=8, num_units=3), DeepSupervisionMSELoss(), 2, 2, False, id="mrlnet-x2"
    ),
    pytest.param(lambda: MSRNTV(2, features=8, num_modules=1), L2TVLoss(), 2, 2, True, id="msrntv"),
    pytest.param(
        lambda: MDCSRN(3, num_blocks=2, units_per_block=2, growth_rate=4), nn.L1Loss(), 3, 2, True, id="mdcsrn-3d"
    ),
    pytest.param(
        lambda: RRLSRN(2, 2, features=8, body_layers=2), CharbonnierGDLLoss(), 2, 2, False, id="rrlsrn-x2"
    ),
    pytest.param(
        lambda: RRLSRN(2, 4, features=8, body_layers=1), CharbonnierGDLLoss(), 2, 4, False, id="rrlsrn-x4"
    ),
]


@pytest.mark.parametrize("build,loss_fn,spatial_dims,scale,on_hr_grid", CASES)
def test_can_learn(build, loss_fn, spatial_dims, scale, on_hr_grid):
    torch.manual_seed(0)
    hr = _hr(spatial_dims, 16 if spatial_dims == 2 else 8)
    lr = _lr(hr, scale, on_hr_grid)
    net = build().train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = loss_fn(net(lr), hr)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < 0.85 * losses[0], losses


def test_critic_can_learn():
    """The WGAN-GP critic learns to score smooth 'HR' patches above noisy 'SR' ones."""
    torch.manual_seed(0)
    real = _hr(3, 8, batch=4)
    fake = real + 0.3 * torch.randn(real.shape, generator=torch.Generator().manual_seed(1))
    critic = WGANCritic(3, channels=(4, 8), strides=(1, 2), dense_features=8)
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.9))
    loss_fn = WGANGPCriticLoss()
    losses = []
    for step in range(40):
        optimizer.zero_grad()
        loss = loss_fn(critic, real, fake, generator=torch.Generator().manual_seed(step))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < losses[0] - 0.1, losses
    with torch.no_grad():
        assert critic(real).mean() > critic(fake).mean()
