# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""mDCSRN for inference: the same network, computed with a fraction of the memory traffic.

An mDCSRN (:class:`pipeline.networks.MDCSRN`) is mostly pre-activation ``BatchNorm -> ELU -> conv``
layers over concatenations of all earlier feature maps. Run eagerly, every layer re-copies the
growing concatenation (``torch.cat``), then passes over it twice more for BatchNorm and ELU. In the
paper's b8u4 that is 4,500 channel-passes per voxel against 0.5 M multiply-adds of convolution; on
2 CPU cores the element-wise work took 55 % of the time.

Here, one image at a time:

- every feature map is written once into one channels-first buffer ``(C_total, *S)``; the
  concatenation a layer reads is the buffer's first channels (a contiguous view, no copy);
- each evaluation-mode BatchNorm becomes a per-channel scale and shift, fused with the ELU into
  one pass (:func:`pipeline.acceleration.pointwise.norm_act`);
- the BatchNorm after a bottleneck 1x1x1 convolution, whose only consumer it is, is folded into
  that convolution's weights (:func:`fold_batch_norm`);
- 1x1x1 convolutions are matrix products that write straight into the buffer (``torch.addmm``
  with ``out=``), over chunks of voxels so that the widest normalised input is never held whole
  (memory is the feature buffer plus a few tens of MB); 3x3x3 convolutions read their input
  channels-last, written so by the fused norm/activation pass, the layout where oneDNN's
  convolutions run fastest.

Reduced precision: under ``torch.autocast`` only the 3x3x3 convolutions of the DenseUnits (85 % of
the multiply-adds) run in the autocast dtype; the stem, the 1x1x1 layers and the feature buffer
stay float32. mDCSRN has no global residual: the image itself travels through the stem, the buffer
and the final combination, and rounding it to bf16 (8 mantissa bits) cost 0.21 dB PSNR on the
MNI152 brain box when the whole network ran in bf16.

The result equals ``MDCSRN.eval()(x)`` up to float rounding (tests check it). Inference only: the
buffer is written in place, so there is no backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from pipeline.acceleration.pointwise import activation_spec, norm_act
from pipeline.networks.mdcsrn import MDCSRN

__all__ = ["FastMDCSRN", "batch_norm_affine", "fold_batch_norm"]

# Voxels per 1x1 product: the normalised input of the widest layer (600 channels) is then 79 MB in
# fp32 instead of up to 600 x the patch; measured as fast as whole-patch products (2 cores, 64^3).
_VOXELS_PER_PRODUCT = 32768


def batch_norm_affine(norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift), each (C,), of an evaluation-mode BatchNorm: ``norm(x) = x * scale + shift``.

    Raises:
        TypeError: for a normalisation without stored statistics (e.g. InstanceNorm).
    """
    if not isinstance(norm, _BatchNorm) or norm.running_mean is None or norm.running_var is None:
        raise TypeError(f"only BatchNorm with running statistics can be folded, got {type(norm).__name__}")
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    return scale.detach().float(), shift.detach().float()


def fold_batch_norm(
    weight: torch.Tensor, bias: torch.Tensor | None, norm: nn.Module
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights of ``conv`` followed by an evaluation-mode BatchNorm, as one convolution.

    ``norm(conv(x)) = (scale * W) x + (scale * b + shift)`` per output channel.

    Args:
        weight: (C_out, C_in, *k) convolution weight.
        bias: (C_out,) bias or ``None``.
        norm: the BatchNorm over the C_out channels.

    Returns:
        (weight, bias) of the folded convolution.
    """
    scale, shift = batch_norm_affine(norm)
    folded_weight = weight.detach() * scale.view(-1, *([1] * (weight.dim() - 1)))
    folded_bias = shift if bias is None else bias.detach() * scale + shift
    return folded_weight, folded_bias


@dataclass
class _Layer:
    """``conv(act(x * scale + shift))``; a 1x1 kernel is stored as a (C_out, C_in) matrix."""

    scale: torch.Tensor
    shift: torch.Tensor
    act: tuple[str, float]
    weight: torch.Tensor
    bias: torch.Tensor
    padding: int

    def to(self, **kwargs) -> _Layer:
        return _Layer(*(t.to(**kwargs) for t in (self.scale, self.shift)), self.act,
                      *(t.to(**kwargs) for t in (self.weight, self.bias)), self.padding)


class FastMDCSRN(nn.Module):
    """Inference-only mDCSRN built from a trained :class:`MDCSRN` (see the module docstring).

    Args:
        network: a trained MDCSRN (its evaluation-mode BatchNorm statistics are used).

    Example::

        fast = FastMDCSRN(trained_mdcsrn)
        with torch.inference_mode():
            sr = fast(x)  # == trained_mdcsrn.eval()(x) up to rounding, (B, C_out, *S)
    """

    def __init__(self, network: MDCSRN) -> None:
        super().__init__()
        self.spatial_dims = network.stem.weight.dim() - 2
        self._conv = F.conv3d if self.spatial_dims == 3 else F.conv2d
        self._channels_last = torch.channels_last_3d if self.spatial_dims == 3 else torch.channels_last
        stem = network.stem
        self.stem = _Layer(torch.empty(0), torch.empty(0), ("identity", 0.0), stem.weight.detach().clone(),
                           _bias(stem), int(stem.padding[0]))
        self.levels = [(self._preact(level[0]), [self._unit(unit) for unit in level[1]]) for level in network.levels]
        self.combine = self._preact(network.combine)
        self.width = stem.out_channels
        self.total_channels = self.width + sum(c.weight.shape[0] + sum(u[-1].weight.shape[0] for u in units)
                                               for c, units in self.levels)
        self._cast: dict[tuple[torch.device, torch.dtype], tuple] = {}
        self._buffer: torch.Tensor | None = None

    def release_buffer(self) -> None:
        """Free the feature buffer kept between calls (it is reused while the patch shape stays)."""
        self._buffer = None

    def _feature_buffer(self, like: torch.Tensor) -> torch.Tensor:
        """The (C_total, *S) buffer, reused across calls of one shape: patches of a volume share it, and
        a fresh buffer of a few GB would be page-faulted in again for every patch."""
        shape = (self.total_channels, *like.shape[1:])
        buffer = self._buffer
        if buffer is None or buffer.shape != shape or buffer.dtype != like.dtype or buffer.device != like.device:
            self._buffer = None  # free the old one before allocating the new
            buffer = self._buffer = like.new_empty(shape)
        return buffer

    @staticmethod
    def _layer(norm: tuple[torch.Tensor, torch.Tensor], act: nn.Module | None, conv: nn.Module,
               weight: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> _Layer:
        weight = conv.weight.detach().clone() if weight is None else weight
        bias = _bias(conv) if bias is None else bias
        padding = int(conv.padding[0])
        if all(k == 1 for k in weight.shape[2:]):
            weight, padding = weight.reshape(weight.shape[0], weight.shape[1]).contiguous(), 0
        return _Layer(*norm, activation_spec(act), weight, bias, padding)

    def _preact(self, layer: nn.Sequential) -> _Layer:
        adn, conv = layer[0], layer[1]
        return self._layer(batch_norm_affine(adn.N), adn.A, conv)

    def _unit(self, unit: nn.Sequential) -> list[_Layer]:
        """One DenseUnit: [bottleneck,] conv; the conv's BatchNorm folds into the bottleneck."""
        if len(unit) == 1:
            return [self._preact(unit[0])]
        (adn, bottleneck), (conv_adn, conv) = unit[0], unit[1]
        weight, bias = fold_batch_norm(bottleneck.weight, bottleneck.bias, conv_adn.N)
        first = self._layer(batch_norm_affine(adn.N), adn.A, bottleneck, weight, bias)
        identity = (torch.ones(conv.in_channels), torch.zeros(conv.in_channels))
        return [first, self._layer(identity, conv_adn.A, conv)]

    def _layers(self, device: torch.device, low: torch.dtype) -> tuple:
        """All layers on ``device``: 3x3x3 unit convolutions in ``low``, the rest float32 (cast once, kept)."""
        key = (device, low)
        if key not in self._cast:
            def cast(layer: _Layer, dtype: torch.dtype = torch.float32) -> _Layer:
                moved = layer.to(device=device, dtype=torch.float32)
                if moved.weight.dim() > 2:
                    moved.weight = moved.weight.to(dtype).contiguous(memory_format=self._channels_last)
                    moved.bias = moved.bias.to(dtype)
                return moved

            levels = [(cast(c), [[cast(x, low) for x in unit] for unit in units]) for c, units in self.levels]
            self._cast[key] = (cast(self.stem), levels, cast(self.combine))
        return self._cast[key]

    def _apply_layer(self, layer: _Layer, features: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """(C_in, *S) channels-first features -> (C_out, *S), written into ``out`` when given."""
        spatial = features.shape[1:]
        if layer.weight.dim() == 2:  # 1x1: a matrix product over channels, in chunks of voxels
            flat = features.view(features.shape[0], -1)
            if out is None:
                result = features.new_empty((layer.weight.shape[0], flat.shape[1]))
            else:
                result = out.view(out.shape[0], -1)
            for start in range(0, flat.shape[1], _VOXELS_PER_PRODUCT):
                chunk = slice(start, start + _VOXELS_PER_PRODUCT)
                x = norm_act(flat[:, chunk], layer.scale, layer.shift, *layer.act)
                torch.addmm(layer.bias[:, None], layer.weight, x, out=result[:, chunk])
            return result.view(-1, *spatial)
        x = norm_act(features, layer.scale, layer.shift, *layer.act, channels_last=True, dtype=layer.weight.dtype)
        result = self._conv(x.movedim(-1, 0)[None], layer.weight, layer.bias, padding=layer.padding)[0]  # x: (*S, C_in)
        if out is None:
            return result
        out.copy_(result)
        return out

    def _forward_one(self, image: torch.Tensor, layers: tuple) -> torch.Tensor:
        stem, levels, combine = layers
        features = self._conv(image[None], stem.weight, stem.bias, padding=stem.padding)[0]
        buffer = self._feature_buffer(features)
        buffer[: self.width] = features
        offset = self.width
        for compressor, units in levels:
            self._apply_layer(compressor, buffer[:offset], out=buffer[offset : offset + self.width])
            filled = self.width
            for unit in units:
                features = buffer[offset : offset + filled]
                for layer in unit[:-1]:
                    features = self._apply_layer(layer, features)
                grown = unit[-1].weight.shape[0]
                self._apply_layer(unit[-1], features, out=buffer[offset + filled : offset + filled + grown])
                filled += grown
            offset += filled
        return self._apply_layer(combine, buffer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, *S) LR on the HR grid -> (B, C_out, *S) float32 SR (see the module docstring on autocast)."""
        device_type = x.device.type
        low = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else torch.float32
        layers = self._layers(x.device, low)
        with torch.autocast(device_type, enabled=False):
            return torch.stack([self._forward_one(image.float(), layers) for image in x])


def _bias(conv: nn.Module) -> torch.Tensor:
    return conv.bias.detach().clone() if conv.bias is not None else torch.zeros(conv.out_channels)
