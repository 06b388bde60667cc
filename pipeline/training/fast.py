# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""The fast CPU training settings, as the trainer's inferer: channels-last and measured precision.

MONAI's ``SupervisedTrainer`` runs ``inferer(inputs, network)`` for the forward pass, inside which
:class:`FastTrainingInferer`:

- converts the network (once, in place, so the optimiser keeps its parameters) and every batch to
  channels-last memory, the layout oneDNN's convolutions run fastest in, forward and backward;
- on CPU, runs the forward pass under ``torch.autocast`` when the resolved precision is bf16
  (``auto``: bf16 only where a training step, forward and backward, was timed faster than in fp32
  for this network on this CPU, see :func:`pipeline.acceleration.resolve_precision`); the backward
  pass follows autocast's casts. On
  CUDA the trainer's own ``amp`` (fp16 autocast with gradient scaling) applies, as before.

Process-wide settings (threads, allocator) are the entry points' business
(:func:`pipeline.acceleration.configure_process`), not this class's. Measured side by side by
``benchmarks/training_speed.py``.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from monai.inferers import Inferer

from pipeline.acceleration import channels_last_format, precision_context, resolve_precision
from pipeline.training.handlers import unwrap_module

__all__ = ["FastTrainingInferer", "to_channels_last"]

logger = logging.getLogger(__name__)


def to_channels_last(network: torch.nn.Module, spatial_dims: int) -> torch.nn.Module:
    """``network`` with its parameters in channels-last memory (in place), for wrapping in DDP afterwards."""
    return network.to(memory_format=channels_last_format(spatial_dims))


class FastTrainingInferer(Inferer):
    """``network(inputs)`` in channels-last memory and the resolved precision (see the module docstring).

    Args:
        spatial_dims: 2 or 3, the network's convolution dimensionality.
        precision: "auto", "fp32", "bf16" or "fp16" (CPU autocast; ignored on CUDA, where the trainer's
            ``amp`` applies).
        channels_last: convert the network and inputs to channels-last memory.
    """

    def __init__(self, spatial_dims: int, precision: str = "auto", channels_last: bool = True) -> None:
        super().__init__()
        self.memory_format = channels_last_format(spatial_dims)
        self.requested_precision = precision
        self.channels_last = channels_last
        self.precision: str | None = None
        self.precision_reason: str | None = None
        self._converted: set[int] = set()

    def _prepare(self, inputs: torch.Tensor, network: torch.nn.Module) -> None:
        if self.channels_last and id(network) not in self._converted:
            if not isinstance(network, torch.nn.parallel.DistributedDataParallel):
                network.to(memory_format=self.memory_format)
            # else: converting after wrapping leaves DDP's gradient buckets in the old layout, and the
            # averaged gradients came out wrong (measured on 2 gloo ranks); convert before wrapping
            # (:func:`to_channels_last`, as every bundle's multi_gpu_train.json does)
            self._converted.add(id(network))
        if self.precision is None:
            if inputs.device.type == "cpu":
                probe, sample = None, None
                if self.requested_precision == "auto":
                    # the whole batch: bf16 won on one 24^3 patch (2.1x), lost on 4 (0.9x)
                    sample = inputs.detach().clone()
                    # a copy of the bare module: timing must not touch the trained BatchNorm statistics, and a
                    # copied DistributedDataParallel wrapper would join the gradient all-reduce
                    probe = copy.deepcopy(unwrap_module(network)).eval()
                self.precision, self.precision_reason = resolve_precision(
                    self.requested_precision, inputs.device, probe, sample, training=True
                )
            else:
                self.precision, self.precision_reason = "fp32", "CUDA: the trainer's amp setting applies"
            logger.info(f"training precision {self.precision} ({self.precision_reason})")

    def __call__(self, inputs: torch.Tensor, network: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        """(B, C, *S) inputs -> ``network(inputs)``; the output's dtype is float32 for the loss."""
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=self.memory_format)
        self._prepare(inputs, network)
        with precision_context(inputs.device, self.precision):
            out = network(inputs, *args, **kwargs)
        return out.float() if isinstance(out, torch.Tensor) else out
