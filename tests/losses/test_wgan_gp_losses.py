# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.losses import (
    WGANGPCriticLoss,
    WGANGPGeneratorLoss,
    gradient_penalty,
    wgan_critic_loss,
    wgan_generator_loss,
)
from pipeline.networks import WGANCritic


class LinearCritic(nn.Module):
    """D(x) = <w, x> + b per sample, whose input gradient is w everywhere."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).flatten(start_dim=1).sum(dim=1, keepdim=True) + 1.0


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_gradient_penalty_of_linear_critic(spatial_dims):
    shape = (1,) + (2,) * spatial_dims
    weight = torch.full(shape, 0.3)  # ||w||_2 = 0.3 * sqrt(2^N)
    critic = LinearCritic(weight)
    real, fake = torch.rand((3,) + shape), torch.rand((3,) + shape)
    expected = (0.3 * (2**spatial_dims) ** 0.5 - 1.0) ** 2
    gp = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(gp, torch.tensor(expected))
    gp.backward()  # differentiable w.r.t. the critic's parameters (create_graph=True)
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0


def test_gradient_penalty_given_weights_and_unit_norm_critic():
    """A critic with unit-norm gradient has zero penalty whatever the interpolation weights."""
    weight = torch.zeros(1, 2, 2)
    weight[0, 0, 0] = 1.0
    critic = LinearCritic(weight)
    real, fake = torch.rand(2, 1, 2, 2), torch.rand(2, 1, 2, 2)
    for eps in (torch.tensor([0.0, 1.0]), torch.full((2, 1, 1, 1), 0.3)):
        torch.testing.assert_close(gradient_penalty(critic, real, fake, interpolation_weights=eps), torch.tensor(0.0))


def test_gradient_penalty_interpolates_between_real_and_fake():
    """With a quadratic critic D(x) = sum(x^2)/2 the gradient is the interpolate itself."""
    real, fake = torch.full((1, 1, 1, 2), 2.0), torch.zeros(1, 1, 1, 2)
    gp = gradient_penalty(lambda x: 0.5 * (x**2).flatten(1).sum(1), real, fake, torch.tensor([0.25]))
    # interpolate = 0.25 * 2 = 0.5 per element -> ||grad|| = 0.5 * sqrt(2)
    torch.testing.assert_close(gp, torch.tensor((0.5 * 2**0.5 - 1) ** 2))


def test_gradient_penalty_is_reproducible_with_generator():
    critic = WGANCritic(2, channels=(2, 2), strides=(1, 2), dense_features=4)
    real, fake = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    gps = [gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    torch.testing.assert_close(gps[0], gps[1])


def test_wasserstein_terms():
    real, fake = torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [-2.0]])
    torch.testing.assert_close(wgan_critic_loss(real, fake), torch.tensor(-1.0 - 2.0))
    torch.testing.assert_close(wgan_generator_loss(fake), torch.tensor(1.0))


def test_critic_loss_module():
    critic = LinearCritic(torch.full((1, 2, 2), 0.5))  # ||w|| = 1 -> no penalty
    real, fake = torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2, requires_grad=True)
    loss = WGANGPCriticLoss(gp_weight=10.0)(critic, real, fake)
    torch.testing.assert_close(loss, torch.tensor(1.0 - 3.0))
    loss.backward()
    assert fake.grad is None  # fake is detached: only the critic learns from this loss


def test_generator_loss_module():
    critic = LinearCritic(torch.full((1, 2, 2), 0.5))
    sr, hr = torch.full((2, 1, 2, 2), 0.5, requires_grad=True), torch.zeros(2, 1, 2, 2)
    loss = WGANGPGeneratorLoss(adversarial_weight=0.1)(sr, hr, critic)
    torch.testing.assert_close(loss, torch.tensor(0.5 + 0.1 * -(1.0 + 1.0)))
    loss.backward()
    assert sr.grad is not None
    mse = WGANGPGeneratorLoss(adversarial_weight=0.0, intensity_loss=nn.MSELoss())(sr, hr, critic)
    torch.testing.assert_close(mse, torch.tensor(0.25))


def test_ill_arg():
    with pytest.raises(ValueError):
        WGANGPCriticLoss(gp_weight=-1.0)
    with pytest.raises(ValueError):
        WGANGPGeneratorLoss(adversarial_weight=-0.1)
    with pytest.raises(ValueError):
        gradient_penalty(LinearCritic(torch.ones(1, 2, 2)), torch.rand(1, 1, 2, 2), torch.rand(2, 1, 2, 2))
