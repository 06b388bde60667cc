# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Small building blocks and argument checks shared by the SR networks."""

from __future__ import annotations

import math
from collections.abc import Sequence

from monai.networks.blocks import Convolution

__all__ = ["check_spatial_dims", "check_positive_ints", "check_odd_kernels", "conv", "upsample_transposed_conv"]


def check_spatial_dims(spatial_dims: int, allowed: Sequence[int] = (2, 3)) -> None:
    """Raise ``ValueError`` unless ``spatial_dims`` is one of ``allowed``."""
    if spatial_dims not in allowed:
        raise ValueError(f"spatial_dims must be one of {tuple(allowed)}, got {spatial_dims}.")


def check_positive_ints(**values: int | Sequence[int]) -> None:
    """Raise ``ValueError`` unless every value (or every item of a sequence value) is an int >= 1.

    Example::

        check_positive_ints(in_channels=1, channels=(32, 64))
    """
    for name, value in values.items():
        items = value if isinstance(value, Sequence) else (value,)
        if len(items) == 0 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in items):
            raise ValueError(f"{name} must be a positive int or a non-empty sequence of them, got {value!r}.")


def check_odd_kernels(**values: int | Sequence[int]) -> None:
    """Raise ``ValueError`` unless every kernel size is a positive odd int ("same" padding keeps the size)."""
    check_positive_ints(**values)
    for name, value in values.items():
        items = value if isinstance(value, Sequence) else (value,)
        if not all(v % 2 == 1 for v in items):
            raise ValueError(f"{name} must be odd so that 'same' padding keeps the spatial size, got {value!r}.")


def conv(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    act: tuple | str | None = None,
    norm: tuple | str | None = None,
    bias: bool = True,
) -> Convolution:
    """A stride-1, size-preserving MONAI ``Convolution`` (conv -> norm -> act), plain conv when both are ``None``.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels C_in.
        out_channels: output channels C_out.
        kernel_size: odd kernel size, padded by ``(kernel_size - 1) // 2`` so (B, C_in, *S) -> (B, C_out, *S).
        act: MONAI activation name or ``(name, kwargs)``; ``None`` for none.
        norm: MONAI normalisation name or ``(name, kwargs)``; ``None`` for none.
        bias: whether the convolution has a bias.
    """
    return Convolution(
        spatial_dims,
        in_channels,
        out_channels,
        kernel_size=kernel_size,
        act=act,
        norm=norm,
        bias=bias,
        conv_only=act is None and norm is None,
    )


def upsample_transposed_conv(
    spatial_dims: int, in_channels: int, out_channels: int, scale_factor: int, kernel_size: int, bias: bool = True
) -> Convolution:
    """A transposed convolution whose output is exactly ``scale_factor`` times its input along every spatial axis.

    Padding ``p = ceil((k - s) / 2)`` and output padding ``s + 2p - k`` (0 or 1) give
    ``(n - 1) * s - 2p + k + output_padding = n * s``; e.g. k=4, s=2 gives the LapSRN layer (p=1, no
    output padding), k=9, s=2 the FSRCNN-style layer (p=4, output padding 1).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels C_in.
        out_channels: output channels C_out.
        scale_factor: integer stride s >= 1; (B, C_in, *S) -> (B, C_out, *(s * S)).
        kernel_size: kernel size k >= 1.
        bias: whether the layer has a bias.
    """
    padding = max(math.ceil((kernel_size - scale_factor) / 2), 0)
    output_padding = scale_factor + 2 * padding - kernel_size
    return Convolution(
        spatial_dims,
        in_channels,
        out_channels,
        strides=scale_factor,
        kernel_size=kernel_size,
        bias=bias,
        conv_only=True,
        is_transposed=True,
        padding=padding,
        output_padding=output_padding,
    )
