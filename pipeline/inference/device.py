# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Device choice and a memory-aware batch size for patch/slice inference."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

__all__ = ["resolve_device", "auto_batch_size"]


def resolve_device(device: str | torch.device | None = None, environ: Mapping[str, str] = os.environ) -> torch.device:
    """``None``/"auto" → CUDA when available, else CPU; otherwise the named device, checked.

    Under torchrun (``LOCAL_RANK`` in ``environ``) "auto" gives each rank of a node its own GPU:
    ``cuda:<LOCAL_RANK mod the visible devices>``; on a machine without CUDA every rank uses the CPU.

    Raises:
        ValueError: ``device`` is not a device name ("cpu", "cuda", "cuda:1"...), or names a CUDA
            device this machine does not have.
    """
    if device is None or str(device) == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        local_rank = environ.get("LOCAL_RANK", "").strip()
        if local_rank.isdigit():
            return torch.device("cuda", int(local_rank) % torch.cuda.device_count())
        return torch.device("cuda")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"--device {device!r} is not a device; use auto, cpu, cuda or cuda:N") from err
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(
            f"--device {device!r}: {resolved.type} devices are not supported; use auto, cpu, cuda or cuda:N"
        )
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {resolved} asked for, but CUDA is not available on this machine; use --device cpu")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"device {resolved} asked for, but this machine has {count} CUDA device(s)")
    return resolved


def auto_batch_size(
    device: torch.device,
    patch_voxels: int,
    *,
    bytes_per_voxel: int = 4096,
    cpu_batch: int = 4,
    max_batch: int = 64,
) -> int:
    """Patches/slices per forward pass that fit the device.

    On CUDA: a quarter of the free memory divided by an activation-footprint estimate
    ``patch_voxels * bytes_per_voxel`` (the default 4 KiB per voxel covers the widest networks
    here: 128 fp16/fp32 feature maps plus the intermediates autograd-free inference keeps), clipped
    to ``[1, max_batch]``. On CPU: ``cpu_batch`` (memory is rarely the limit; cores are).
    """
    if device.type != "cuda":
        return cpu_batch
    free, _ = torch.cuda.mem_get_info(device)
    return int(max(1, min(max_batch, (free // 4) // max(1, patch_voxels * bytes_per_voxel))))
