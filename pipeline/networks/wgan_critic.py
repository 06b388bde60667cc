# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""WGAN-GP critic of mDCSRN-GAN: an SRGAN-style discriminator with layer normalisation (the mDCSRN paper)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from torch import nn

from pipeline.networks.layers import check_positive_ints, check_spatial_dims

__all__ = ["WGANCritic"]


class WGANCritic(nn.Module):
    """SRGAN discriminator adapted to WGAN-GP: layer norm instead of batch norm, no sigmoid.

    Ledig et al., "Photo-realistic single image super-resolution using a generative adversarial network",
    CVPR 2017 (the discriminator); Chen et al., arXiv:2003.01217 (2020) (mDCSRN-GAN: 3D, WGAN-GP, "we replace
    the batch normalization layer with layer normalization"); Gulrajani et al., NeurIPS 2017 (WGAN-GP).

    ``conv3(64) -> LReLU``, then ``conv3 -> LN -> LReLU`` blocks with (filters, stride) (64, 2), (128, 1),
    (128, 2), (256, 1), (256, 2), (512, 1), (512, 2), then ``Dense(1024) -> LReLU -> Dense(1)``; LeakyReLU
    slope 0.2. Layer norm normalises each sample over channels and space with a per-channel affine, i.e.
    ``GroupNorm(1, C)``, so it works for any patch size (as in the WGAN-GP reference code).

    Choice where the paper is silent (documented here): SRGAN flattens the last feature map into the dense
    layer, which ties the critic to one patch size; here the last feature map is global-average-pooled
    first, so the critic accepts any patch size (e.g. the 40^3 training patches).

    Args:
        spatial_dims: 3 (default, as in the paper) or 2.
        in_channels: channels of the image patch. Defaults to 1.
        channels: filters of the convolution layers. Defaults to ``(64, 64, 128, 128, 256, 256, 512, 512)``.
        strides: stride of each convolution layer (same length as ``channels``).
            Defaults to ``(1, 2, 1, 2, 1, 2, 1, 2)``.
        dense_features: width of the hidden dense layer. Defaults to 1024.
        negative_slope: LeakyReLU slope. Defaults to 0.2.

    Example::

        critic = WGANCritic(spatial_dims=3)
        scores = critic(torch.rand(6, 1, 40, 40, 40))  # (6, 1)

    Note:
        Input: image patches (B, C_in, H, W[, D]), each side at least ``2 ** (number of stride-2 layers)``
        voxels is sensible (the default downsamples 16x). Output: an unbounded score per sample, (B, 1);
        higher means "more like HR". Use it with :func:`pipeline.losses.gradient_penalty`.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        channels: Sequence[int] = (64, 64, 128, 128, 256, 256, 512, 512),
        strides: Sequence[int] = (1, 2, 1, 2, 1, 2, 1, 2),
        dense_features: int = 1024,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        check_positive_ints(in_channels=in_channels, channels=channels, strides=strides, dense_features=dense_features)
        if len(channels) != len(strides):
            raise ValueError(f"channels and strides need the same length, got {channels} and {strides}.")
        if negative_slope < 0:
            raise ValueError(f"negative_slope must be >= 0, got {negative_slope}.")
        act = ("leakyrelu", {"negative_slope": negative_slope})
        layers = []
        c_in = in_channels
        for i, (c_out, s) in enumerate(zip(channels, strides)):
            norm = None if i == 0 else ("group", {"num_groups": 1})
            layers.append(Convolution(spatial_dims, c_in, c_out, strides=s, kernel_size=3, act=act, norm=norm))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(c_in, dense_features), nn.LeakyReLU(negative_slope), nn.Linear(dense_features, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, *S) patches -> (B, 1) critic scores."""
        pooled = self.features(x).flatten(start_dim=2).mean(dim=2)
        return self.head(pooled)
