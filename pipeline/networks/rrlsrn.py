# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""RRLSRN: robust residual-learning SR network, a LapSRN-like x2 pyramid (the RRLSRN paper)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from pipeline.networks.layers import (
    check_odd_kernels,
    check_positive_ints,
    check_spatial_dims,
    conv,
    upsample_transposed_conv,
)

__all__ = ["LaplacianLevel", "RRLSRN", "cascade_state_dict", "load_cascade_from_x2"]


def _linear_upsampling_kernel(spatial_dims: int, kernel_size: int) -> torch.Tensor:
    """Separable (bi/tri)linear interpolation kernel, LapSRN's initialisation of its transposed convolutions."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    k1d = 1 - torch.abs(torch.arange(kernel_size, dtype=torch.float32) - center) / factor
    kernel = k1d
    for _ in range(spatial_dims - 1):
        kernel = kernel.unsqueeze(-1) * k1d
    return kernel


class LaplacianLevel(nn.Module):
    """One x2 level of the pyramid: feature branch -> residual ``r``, image branch ``u``, output ``u(x) + r``.

    Args:
        spatial_dims: 2 or 3.
        channels: image channels C.
        features: feature-branch filters F.
        body_layers: convolutions before the feature upsampling.
        kernel_size: odd kernel size of the convolutions.
        upsample_kernel_size: kernel size of the stride-2 transposed convolutions.
        negative_slope: LeakyReLU slope of the feature branch.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        features: int,
        body_layers: int,
        kernel_size: int,
        upsample_kernel_size: int,
        negative_slope: float,
    ) -> None:
        super().__init__()
        act = ("leakyrelu", {"negative_slope": negative_slope})
        self.features = nn.Sequential(
            *(conv(spatial_dims, features, features, kernel_size, act=act) for _ in range(body_layers)),
            upsample_transposed_conv(spatial_dims, features, features, 2, upsample_kernel_size),
            nn.LeakyReLU(negative_slope),
        )
        self.residual = conv(spatial_dims, features, channels, kernel_size)
        self.upsample_image = upsample_transposed_conv(
            spatial_dims, channels, channels, 2, upsample_kernel_size, bias=False
        )
        weight = self.upsample_image.conv.weight
        with torch.no_grad():
            weight.zero_()
            for c in range(channels):
                weight[c, c] = _linear_upsampling_kernel(spatial_dims, upsample_kernel_size)

    def forward(self, features: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F, *S) features, (B, C, *S) image -> (B, F, *(2S)) features, (B, C, *(2S)) image."""
        features = self.features(features)
        return features, self.upsample_image(image) + self.residual(features)


class RRLSRN(nn.Module):
    """Robust residual-learning SR network: LapSRN-style feature and image branches, x2 per level.

    Song, Wang, Liu, Li, Fan, Yang, Hu, "Deep robust residual network for brain MRI super-resolution",
    Research Square (2020), doi:10.21203/rs.3.rs-117695/v1; built on Lai et al., "Deep Laplacian pyramid
    networks for fast and accurate super-resolution" (LapSRN), CVPR 2017.

    One x2 level: the feature branch applies ``body_layers`` 3x3 convolutions (64 filters, LeakyReLU 0.2),
    a 4x4 stride-2 transposed convolution (+ LeakyReLU) and a 3x3 convolution predicting the residual ``r``;
    the image branch upsamples the image with a 4x4 stride-2 transposed convolution ``u`` (initialised as
    bilinear interpolation, as LapSRN is); the level outputs ``y = u(x) + r``. An input convolution (64
    filters, LeakyReLU) precedes the first level. ``scale_factor=4`` cascades two levels; the second level's
    feature branch continues from the first level's upsampled features and its image branch upsamples the
    first level's output (LapSRN).

    Choice where the paper is silent (documented here): its "13 convolutional layers" are read as 1 input
    + 11 body + 1 residual-prediction convolution per x2 level (``body_layers=11``).

    Args:
        spatial_dims: 2 (default, as in the paper) or 3.
        scale_factor: 2 or 4. Defaults to 2.
        in_channels: channels of the LR input (= channels of the output). Defaults to 1.
        features: filters of the feature branch. Defaults to 64.
        body_layers: 3x3 convolutions per level in the feature branch. Defaults to 11.
        kernel_size: odd kernel size of the convolutions. Defaults to 3.
        upsample_kernel_size: kernel of the stride-2 transposed convolutions. Defaults to 4.
        negative_slope: LeakyReLU slope. Defaults to 0.2.

    Example::

        net = RRLSRN(spatial_dims=2, scale_factor=4)
        sr = net(torch.rand(64, 1, 32, 32))  # (64, 1, 128, 128)

    Note:
        Input: LR image on the LR grid, (B, C, H, W[, D]), any size; output: (B, C, f*H, f*W[, f*D]).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        scale_factor: int = 2,
        in_channels: int = 1,
        features: int = 64,
        body_layers: int = 11,
        kernel_size: int = 3,
        upsample_kernel_size: int = 4,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        if scale_factor not in (2, 4):
            raise ValueError(f"scale_factor must be 2 or 4, got {scale_factor!r}.")
        check_positive_ints(
            in_channels=in_channels,
            features=features,
            body_layers=body_layers,
            upsample_kernel_size=upsample_kernel_size,
        )
        check_odd_kernels(kernel_size=kernel_size)
        if negative_slope < 0:
            raise ValueError(f"negative_slope must be >= 0, got {negative_slope}.")
        num_levels = 2 if scale_factor == 4 else 1
        self.input_conv = conv(
            spatial_dims, in_channels, features, kernel_size, act=("leakyrelu", {"negative_slope": negative_slope})
        )
        self.levels = nn.ModuleList(
            LaplacianLevel(
                spatial_dims, in_channels, features, body_layers, kernel_size, upsample_kernel_size, negative_slope
            )
            for _ in range(num_levels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, C, *S) LR to (B, C, *(f*S)) SR."""
        features, image = self.input_conv(x), x
        for level in self.levels:
            features, image = level(features, image)
        return image


def cascade_state_dict(x2_state: Mapping[str, torch.Tensor], num_levels: int) -> dict[str, torch.Tensor]:
    """Weights of an ``num_levels``-level RRLSRN in which every level starts as the trained x2 level.

    Args:
        x2_state: state dict of an ``RRLSRN(scale_factor=2)`` (keys ``input_conv.*`` and ``levels.0.*``).
        num_levels: levels of the target network (2 for ``scale_factor=4``).

    Returns:
        ``input_conv.*`` as given, and ``levels.<k>.*`` = ``levels.0.*`` for every level k (copies).

    Note:
        The x4 cascade of LapSRN shares its structure across levels, so the x2 level is a trained starting
        point for each; this initialisation is this project's (the RRLSRN paper trains x2 only).
    """
    unexpected = [k for k in x2_state if not k.startswith(("input_conv.", "levels.0."))]
    if unexpected:
        raise ValueError(f"not the state dict of a one-level (x2) RRLSRN: unexpected keys {unexpected[:3]}")
    state = {k: v.clone() for k, v in x2_state.items() if k.startswith("input_conv.")}
    for level in range(num_levels):
        for key, value in x2_state.items():
            if key.startswith("levels.0."):
                state[f"levels.{level}." + key[len("levels.0.") :]] = value.clone()
    return state


def load_cascade_from_x2(network: RRLSRN, x2_weights: str | os.PathLike) -> RRLSRN:
    """Initialise every level of ``network`` from an x2 RRLSRN weights file (see :func:`cascade_state_dict`)."""
    path = Path(x2_weights)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained x2 RRLSRN weights")
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        network.load_state_dict(cascade_state_dict(state, len(network.levels)))
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"{path}: weights do not fit an x2 RRLSRN level: {str(err).splitlines()[0]}") from err
    return network
