# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Set the stored statistics of a network's normalisation layers from training batches."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from pipeline.training.engines import prepare_sr_batch

__all__ = ["calibrate_norm_statistics"]


@torch.no_grad()
def calibrate_norm_statistics(
    network: nn.Module,
    data_loader: Iterable[Any],
    num_batches: int = 10,
    prepare_batch: Callable[..., tuple[torch.Tensor, torch.Tensor]] = prepare_sr_batch,
    device: str | torch.device | None = None,
) -> nn.Module:
    """Replace the running statistics of every BatchNorm/InstanceNorm layer that tracks them by their
    average over ``num_batches`` batches of ``data_loader``, and return ``network``.

    For networks trained with frozen statistics (``MDCSRN(freeze_norm_statistics=True)``): starting from
    statistics measured on the data, every layer sees inputs of zero mean and unit variance per channel,
    so its activation works in its non-linear range; with the initial statistics (mean 0, variance 1) the
    activations of a deep network shrink layer after layer and it behaves almost linearly. Weights are not
    changed. ``torch.optim.swa_utils.update_bn`` does the same but calls ``network.train()``, which keeps
    frozen normalisation layers in eval mode, hence this function.

    Args:
        network: the network; its mode (and frozen layers) are restored afterwards.
        data_loader: training batches (e.g. the bundle's ``train#dataloader``).
        num_batches: batches to average over.
        prepare_batch: ``batch -> (input, target)``; only the input is used.
        device: where to run the network (default: where its parameters are).

    Raises:
        ValueError: if ``num_batches < 1`` or ``data_loader`` yields no batch.
    """
    if num_batches < 1:
        raise ValueError(f"num_batches must be at least 1, got {num_batches}.")
    device = device if device is not None else next(network.parameters()).device
    norms = [m for m in network.modules() if isinstance(m, _NormBase) and m.track_running_stats]
    was_training, momenta = network.training, [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
        m.train()
    seen = 0
    for batch in islice(data_loader, num_batches):
        network(prepare_batch(batch, device)[0])
        seen += 1
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    network.train(was_training)
    if seen == 0:
        raise ValueError("calibrate_norm_statistics: the data loader yielded no batch.")
    return network
