# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""mDCSRN: 3D multi-level densely connected super-resolution network (the mDCSRN paper)."""

from __future__ import annotations

import re

import torch
from monai.networks.blocks import ADN, DenseBlock
from monai.networks.layers.factories import Conv
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from pipeline.networks.layers import check_positive_ints, check_spatial_dims

__all__ = ["MDCSRN"]


def _preact_conv(
    spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int, act: tuple | str, norm: tuple | str
) -> nn.Sequential:
    """Pre-activation ``norm -> act -> conv`` (DenseNet-BC order), size-preserving."""
    return nn.Sequential(
        ADN(ordering="NA", in_channels=in_channels, act=act, norm=norm, norm_dim=spatial_dims),
        Conv[Conv.CONV, spatial_dims](in_channels, out_channels, kernel_size, padding=kernel_size // 2),
    )


class MDCSRN(nn.Module):
    """Multi-level densely connected SR network (mDCSRN), the generator of mDCSRN-GAN.

    Chen, Shi, Christodoulou, Xie, Zhou, Li, "MRI super-resolution with GAN and 3D multi-level DenseNet:
    smaller, faster, and better", arXiv:2003.01217 (2020); MICCAI 2018 (b4u4).

    - stem: 3x3x3 convolution with 2k filters;
    - ``num_blocks`` levels; level j applies a 1x1x1 compressor to 2k channels on the concatenation of the
      stem and the outputs of ALL earlier blocks (multi-level dense connections), then a DenseBlock of
      ``units_per_block`` DenseUnits. A DenseUnit is ``BN-ELU-conv3x3x3(k)``, preceded by a
      ``BN-ELU-conv1x1x1(4k)`` bottleneck when its input is wider than 4k ("when needed"). The block
      output concatenates its input with all unit outputs (2k + u*k channels);
    - direct feature combination: ``BN-ELU-conv1x1x1`` from the concatenation of the stem and all block
      outputs to ``out_channels``. There is no upsampling layer and no global residual.

    Choices where the paper is silent (documented here): pre-activation (BN-ELU-conv) ordering as in
    DenseNet-BC; the compressor is also applied before the first block (the paper: "before each
    DenseBlock"); the direct combination also sees the stem ("all feature maps").

    Args:
        spatial_dims: 3 (default, as in the paper) or 2.
        in_channels: channels of the LR input. Defaults to 1.
        out_channels: channels of the SR output. Defaults to 1.
        num_blocks: number b of DenseBlocks. Defaults to 8 (b8u4, the paper's best model, used for its
            GAN, segmentation and figure results; b4u4 is the light variant).
        units_per_block: number u of DenseUnits per block. Defaults to 4.
        growth_rate: k. Defaults to 12.
        bottleneck_factor: bottleneck width in units of k. Defaults to 4.
        act: activation (MONAI name or ``(name, kwargs)``). Defaults to ``"elu"``.
        norm: normalisation (MONAI name or ``(name, kwargs)``). Defaults to ``"batch"``.
        freeze_norm_statistics: keep every normalisation layer in evaluation mode, also in ``train()``: the
            layers then use their stored statistics (at initialisation mean 0, variance 1, i.e. a learnable
            per-channel affine) instead of the batch's. For training on small batches (a few small patches on
            CPU), where batch statistics vary so much between batches that the output's absolute intensity
            cannot be learnt. Not stored in the state dict. Defaults to False (the paper: batch statistics).

    Example::

        net = MDCSRN.from_variant("b4u4")
        sr = net(torch.rand(6, 1, 40, 40, 40))  # (6, 1, 40, 40, 40)

    Note:
        The input is the LR image on the HR grid (k-space truncated or interpolated, same matrix),
        (B, C_in, H, W, D) of any size; the output is (B, C_out, H, W, D). With BatchNorm, batches of
        one in training mode are ill-defined; the paper trains on 40^3 patches with batch 6 and, at test time
        (70^3 patches, batch 1), ran BatchNorm in training mode ("for better estimation").
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        out_channels: int = 1,
        num_blocks: int = 8,
        units_per_block: int = 4,
        growth_rate: int = 12,
        bottleneck_factor: int = 4,
        act: tuple | str = "elu",
        norm: tuple | str = "batch",
        freeze_norm_statistics: bool = False,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        check_positive_ints(
            in_channels=in_channels,
            out_channels=out_channels,
            num_blocks=num_blocks,
            units_per_block=units_per_block,
            growth_rate=growth_rate,
            bottleneck_factor=bottleneck_factor,
        )
        k, width = growth_rate, 2 * growth_rate
        bottleneck = bottleneck_factor * k
        self.stem = Conv[Conv.CONV, spatial_dims](in_channels, width, 3, padding=1)
        self.levels = nn.ModuleList()
        concat_channels = width
        for _ in range(num_blocks):
            units = []
            for i in range(units_per_block):
                c_in = width + i * k
                layers = [_preact_conv(spatial_dims, c_in, bottleneck, 1, act, norm)] if c_in > bottleneck else []
                layers.append(_preact_conv(spatial_dims, min(c_in, bottleneck), k, 3, act, norm))
                units.append(nn.Sequential(*layers))
            compressor = _preact_conv(spatial_dims, concat_channels, width, 1, act, norm)
            self.levels.append(nn.Sequential(compressor, DenseBlock(units)))
            concat_channels += width + units_per_block * k
        self.combine = _preact_conv(spatial_dims, concat_channels, out_channels, 1, act, norm)
        self.freeze_norm_statistics = freeze_norm_statistics
        self.train()

    def train(self, mode: bool = True) -> MDCSRN:
        """Set training mode; normalisation layers stay in evaluation mode if ``freeze_norm_statistics``."""
        super().train(mode)
        if self.freeze_norm_statistics:
            for module in self.modules():
                if isinstance(module, _NormBase):
                    module.eval()
        return self

    def init_as_identity(self, shift: float = 0.0) -> MDCSRN:
        """Initialise the network so that it returns its input, and return it (for use in configs).

        The first stem filter of each input channel becomes a centred delta and the direct combination
        takes that channel alone (its other weights zero), so training starts from the LR image (on the HR
        grid) instead of a random map; all other layers keep their weights. The combination's conv undoes
        its normalisation with that layer's stored statistics (mean m, variance v): norm affine 1 and
        ``shift`` on the channel, conv weight sqrt(v + eps), bias m - shift * sqrt(v + eps). The output
        equals the input while that normalisation uses its stored statistics (evaluation mode or
        ``freeze_norm_statistics``) and ``(x - m) / sqrt(v + eps) + shift >= 0`` (ELU is the identity
        there): with the initial statistics (0, 1) and ``shift`` 0, any non-negative input (magnitude MR
        images); after :func:`pipeline.training.calibrate_norm_statistics`, a ``shift`` of a few units
        covers inputs down to that many standard deviations below the mean. Call it again after a
        calibration: the stem's delta must be in place before calibrating, the combination reads the new
        statistics. An initialisation only: the architecture is unchanged.

        Args:
            shift: offset added after the normalisation of the identity channel, in standard deviations.

        Raises:
            ValueError: if ``in_channels != out_channels``.
        """
        stem, norm, combine_conv = self.stem, self.combine[0].N, self.combine[1]
        channels = stem.in_channels
        if channels != combine_conv.out_channels:
            raise ValueError(
                f"init_as_identity needs in_channels == out_channels, got {channels} and "
                f"{combine_conv.out_channels}."
            )
        if getattr(norm, "running_mean", None) is None:
            raise ValueError("init_as_identity needs a normalisation with stored statistics (e.g. BatchNorm).")
        centre = tuple(k // 2 for k in stem.kernel_size)
        with torch.no_grad():
            stem.weight[:channels].zero_()
            stem.bias[:channels].zero_()
            combine_conv.weight.zero_()
            for c in range(channels):
                stem.weight[(c, c) + centre] = 1.0
                mean, std = float(norm.running_mean[c]), float(torch.sqrt(norm.running_var[c] + norm.eps))
                norm.weight[c], norm.bias[c] = 1.0, shift
                combine_conv.weight[(c, c) + (0,) * len(centre)] = std
                combine_conv.bias[c] = mean - shift * std
        return self

    @classmethod
    def from_variant(cls, variant: str, **kwargs) -> MDCSRN:
        """Build a named variant ``"b<num_blocks>u<units_per_block>"``, e.g. ``"b4u4"`` or ``"b8u4"``.

        Args:
            variant: the paper's variant name.
            kwargs: other constructor arguments.
        """
        match = re.fullmatch(r"b(\d+)u(\d+)", variant)
        if match is None:
            raise ValueError(f"variant must look like 'b4u4' or 'b8u4', got {variant!r}.")
        return cls(num_blocks=int(match.group(1)), units_per_block=int(match.group(2)), **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, C_in, *S) LR (on the HR grid) to (B, C_out, *S) SR."""
        features = [self.stem(x)]
        for level in self.levels:
            features.append(level(torch.cat(features, dim=1)))
        return self.combine(torch.cat(features, dim=1))
