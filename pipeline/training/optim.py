# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Optimiser helpers for the papers' training recipes (e.g. SRCNN's smaller last-layer learning rate)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from pipeline.training.handlers import unwrap_module

__all__ = ["param_groups"]


def param_groups(network: torch.nn.Module, lr_by_prefix: Mapping[str, float]) -> list[dict[str, Any]]:
    """Optimiser parameter groups with their own learning rate for parameters named by prefix.

    Args:
        network: the module whose trainable parameters are grouped (names are those of the module a
            ``DistributedDataParallel``/``DataParallel`` wrapper holds).
        lr_by_prefix: ``{name prefix: learning rate}``; a parameter joins the group of the first
            prefix its name starts with (e.g. ``{"layers.2.": 1e-5}`` for SRCNN's reconstruction layer).

    Returns:
        a first group of the remaining parameters without ``"lr"`` (it takes the optimiser's default;
        left out when empty), then one group per prefix (``{"params": [...], "lr": lr}``).

    Example::

        optimizer = torch.optim.SGD(param_groups(net, {"layers.2.": 1e-5}), lr=1e-4, momentum=0.9)
    """
    groups: dict[str, list[torch.nn.Parameter]] = {prefix: [] for prefix in lr_by_prefix}
    rest: list[torch.nn.Parameter] = []
    for name, param in unwrap_module(network).named_parameters():
        if not param.requires_grad:
            continue
        prefix = next((p for p in lr_by_prefix if name.startswith(p)), None)
        (rest if prefix is None else groups[prefix]).append(param)
    empty = [p for p, params in groups.items() if not params]
    if empty:
        raise ValueError(f"no trainable parameter name starts with {empty}")
    prefixed = [{"params": groups[p], "lr": float(lr)} for p, lr in lr_by_prefix.items()]
    return [{"params": rest}, *prefixed] if rest else prefixed
