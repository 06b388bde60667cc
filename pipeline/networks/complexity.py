# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Model complexity: parameter counts and multiply-accumulates (MACs) per output voxel.

``mrisr report complexity`` prints the markdown table of ``pipeline/networks/README.md``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from pipeline.networks.mdcsrn import MDCSRN
from pipeline.networks.mfcn import MFCN
from pipeline.networks.mrlnet import MRLNet
from pipeline.networks.msrntv import MSRNTV
from pipeline.networks.rrlsrn import RRLSRN
from pipeline.networks.srcnn import SRCNN
from pipeline.networks.wgan_critic import WGANCritic

__all__ = ["count_parameters", "macs_per_output_voxel", "complexity_table"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def count_parameters(net: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable, by default) parameters of ``net``."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)


def _layer_macs(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    """MACs of one convolution, transposed convolution or linear layer for the whole batch."""
    if isinstance(module, _CONV):
        return output.numel() * module.in_channels // module.groups * math.prod(module.kernel_size)
    if isinstance(module, _TRANSPOSED):
        return inputs[0].numel() * module.out_channels // module.groups * math.prod(module.kernel_size)
    return output.numel() * module.in_features


def macs_per_output_voxel(net: nn.Module, input_shape: Sequence[int]) -> float:
    """Multiply-accumulates of the conv, transposed-conv and linear layers per output voxel of one sample.

    The network is copied onto PyTorch's ``meta`` device and run in eval mode, so nothing is computed and
    ``net`` is left untouched. Element-wise operations (activations, normalisation, sums) are not counted;
    a convolution counts ``C_in / groups * prod(kernel)`` MACs per output element (zero padding included),
    a transposed convolution ``C_out / groups * prod(kernel)`` per input element.

    Args:
        net: the network.
        input_shape: full input shape (B, C, *S).

    Returns:
        MACs per sample divided by the number of output voxels ``prod(S_out)`` (1 for (B, K) outputs,
        e.g. the critic's score, so there it is MACs per sample).
    """
    if len(input_shape) < 2:
        raise ValueError(f"input_shape must be (B, C, *spatial), got {tuple(input_shape)}.")
    meta_net = copy.deepcopy(net).to("meta").eval()
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += _layer_macs(module, inputs, output)

    for module in meta_net.modules():
        if isinstance(module, _CONV + _TRANSPOSED + (nn.Linear,)):
            module.register_forward_hook(hook)
    with torch.no_grad():
        output = meta_net(torch.empty(tuple(input_shape), device="meta"))
    voxels = math.prod(output.shape[2:])
    return total / input_shape[0] / voxels


# (name, constructor, input shape (B, C, *S), paper's figure)
_TABLE: list[tuple[str, Callable[[], nn.Module], tuple[int, ...], str]] = [
    ("SRCNN 9-5-5 (2D)", lambda: SRCNN(2), (1, 1, 64, 64), "57,184 weights (Dong et al. 2016, 9-5-5)"),
    ("SRCNN 9-5-5 (3D)", lambda: SRCNN(3), (1, 1, 16, 16, 16), "-"),
    ("MFCN_BL", lambda: MFCN(2), (1, 1, 64, 64), "-"),
    ("MFCN_S3", lambda: MFCN(2, subpath_kernel_sizes=(3,)), (1, 1, 64, 64), "-"),
    ("MRLNet x2", lambda: MRLNet(2, scale_factor=2), (1, 1, 32, 32), "19 conv + 1 deconv layers, 128 filters"),
    ("MRLNet x3", lambda: MRLNet(2, scale_factor=3), (1, 1, 32, 32), "-"),
    ("MRLNet x4", lambda: MRLNet(2, scale_factor=4), (1, 1, 32, 32), "-"),
    ("MSRNTV", lambda: MSRNTV(2), (1, 1, 64, 64), "depth 19 (OCR'd text)"),
    ("MDCSRN b4u4", lambda: MDCSRN.from_variant("b4u4"), (1, 1, 16, 16, 16), "in Tables 1-2, not in the seed text"),
    ("MDCSRN b8u4", lambda: MDCSRN.from_variant("b8u4"), (1, 1, 16, 16, 16), "in Tables 1-2, not in the seed text"),
    ("WGANCritic (40^3 patch)", lambda: WGANCritic(3), (1, 1, 40, 40, 40), "-"),
    ("RRLSRN x2", lambda: RRLSRN(2, scale_factor=2), (1, 1, 32, 32), "13 conv + 2 transposed conv"),
    ("RRLSRN x4", lambda: RRLSRN(2, scale_factor=4), (1, 1, 32, 32), "-"),
]


def complexity_table() -> str:
    """Markdown table of parameter counts and MACs per output voxel of every network at its defaults."""
    lines = [
        "| network | input (B, C, *S) | parameters | MACs / output voxel | paper |",
        "|---|---|---:|---:|---|",
    ]
    for name, build, shape, paper in _TABLE:
        net = build()
        lines.append(
            f"| {name} | {shape} | {count_parameters(net):,} | {macs_per_output_voxel(net, shape):,.0f} | {paper} |"
        )
    return "\n".join(lines)

