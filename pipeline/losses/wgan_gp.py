# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Wasserstein GAN with gradient penalty (WGAN-GP) losses for mDCSRN-GAN (the mDCSRN paper)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.modules.loss import _Loss

__all__ = [
    "gradient_penalty",
    "wgan_critic_loss",
    "wgan_generator_loss",
    "WGANGPCriticLoss",
    "WGANGPGeneratorLoss",
]

Critic = Callable[[torch.Tensor], torch.Tensor]


def gradient_penalty(
    critic: Critic,
    real: torch.Tensor,
    fake: torch.Tensor,
    interpolation_weights: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""WGAN-GP penalty :math:`\mathbb{E}\big[(\|\nabla_{\tilde x} D(\tilde x)\|_2 - 1)^2\big]`.

    Gulrajani et al., "Improved training of Wasserstein GANs", NeurIPS 2017. The critic is evaluated at
    :math:`\tilde x = \epsilon x_{real} + (1 - \epsilon) x_{fake}` with one :math:`\epsilon \sim U[0, 1]` per
    sample; the gradient norm is taken over all of a sample's channels and voxels. The result keeps the
    graph (``create_graph=True``), so it can be back-propagated into the critic's parameters.

    Args:
        critic: maps (B, C, *S) to per-sample scores (B, ...).
        real: real (HR) patches, (B, C, *S).
        fake: generated (SR) patches, same shape; usually detached from the generator.
        interpolation_weights: :math:`\epsilon`, shape (B,) or broadcastable to ``real``; drawn uniformly
            with ``generator`` when ``None``.
        generator: random generator for :math:`\epsilon` (on ``real``'s device), for reproducibility.

    Returns:
        scalar penalty (without the weight :math:`\lambda`).

    Example::

        gp = gradient_penalty(critic, hr, sr.detach(), generator=torch.Generator().manual_seed(0))
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake shapes differ: {tuple(real.shape)} vs {tuple(fake.shape)}.")
    weight_shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    if interpolation_weights is None:
        interpolation_weights = torch.rand(weight_shape, generator=generator, device=real.device, dtype=real.dtype)
    elif interpolation_weights.ndim == 1:
        interpolation_weights = interpolation_weights.reshape(weight_shape)
    interpolates = (interpolation_weights * real + (1 - interpolation_weights) * fake).requires_grad_(True)
    scores = critic(interpolates)
    (grads,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
    return ((grads.flatten(start_dim=1).norm(p=2, dim=1) - 1) ** 2).mean()


def wgan_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Critic's Wasserstein loss ``mean(D(fake)) - mean(D(real))`` (minimised by the critic)."""
    return fake_scores.mean() - real_scores.mean()


def wgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Generator's adversarial loss ``-mean(D(fake))`` (minimised by the generator)."""
    return -fake_scores.mean()


class WGANGPCriticLoss(_Loss):
    r"""Critic objective :math:`D(x_{fake}) - D(x_{real}) + \lambda \, GP` (batch means).

    Args:
        gp_weight: :math:`\lambda \ge 0`. Defaults to 10 (WGAN-GP).

    Example::

        loss = WGANGPCriticLoss()(critic, hr, sr)  # sr is detached inside

    Note:
        ``fake`` is detached, so only the critic receives gradients.
    """

    def __init__(self, gp_weight: float = 10.0) -> None:
        if not gp_weight >= 0:
            raise ValueError(f"gp_weight must be >= 0, got {gp_weight}.")
        super().__init__()
        self.gp_weight = gp_weight

    def forward(
        self, critic: Critic, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Critic loss for real (B, C, *S) and fake (B, C, *S) patches."""
        fake = fake.detach()
        loss = wgan_critic_loss(critic(real), critic(fake))
        return loss + self.gp_weight * gradient_penalty(critic, real, fake, generator=generator)


class WGANGPGeneratorLoss(_Loss):
    r"""mDCSRN-GAN generator objective :math:`L_{int}(\hat y, y) + \lambda \, (-D(\hat y))` (the mDCSRN paper).

    Args:
        adversarial_weight: :math:`\lambda \ge 0`. Defaults to 0.1 (the paper).
        intensity_loss: voxel-wise loss :math:`L_{int}`. Defaults to ``torch.nn.L1Loss()`` (the paper).

    Example::

        loss = WGANGPGeneratorLoss()(sr, hr, critic)

    Note:
        The critic's parameters receive gradients too; step only the generator's optimiser with it.
    """

    def __init__(self, adversarial_weight: float = 0.1, intensity_loss: nn.Module | None = None) -> None:
        if not adversarial_weight >= 0:
            raise ValueError(f"adversarial_weight must be >= 0, got {adversarial_weight}.")
        super().__init__()
        self.adversarial_weight = adversarial_weight
        self.intensity_loss = nn.L1Loss() if intensity_loss is None else intensity_loss

    def forward(self, input: torch.Tensor, target: torch.Tensor, critic: Critic) -> torch.Tensor:
        """Generator loss of SR ``input`` against HR ``target``, both (B, C, *S)."""
        return self.intensity_loss(input, target) + self.adversarial_weight * wgan_generator_loss(critic(input))
