# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Process-wide settings for fast inference and training, made by one call: :func:`configure_process`.

The package's entry points make that call: the ``mrisr`` command (:func:`pipeline.cli.main.main`), the
bundles' inference run step (:func:`pipeline.bundle_entry.super_resolve`) and their ``train.json``
``initialize`` list. Library classes (``NetworkSR``, ``FastTrainingInferer``...) never change process-wide
state: a Python program that imports the package keeps its own settings unless it calls
:func:`configure_process` itself.

Environment variables read by the package:

=====================  ==========================================================================
``MRISR_NUM_THREADS``  intra-op threads (default: ``OMP_NUM_THREADS``, else the cores this process may use)
``MRISR_KEEP_MALLOC``  set: leave glibc's allocator as it is (see "Allocator" below)
``MRISR_NO_COMPILE``   set: run the fused norm/activation kernel eagerly, never ``torch.compile``
``MRISR_CACHE_DIR``    folder of the measured CPU precision choices (default ``~/.cache/mrisr``)
``MRISR_BUNDLE_DIR``   folders searched for bundle names before the shipped bundles (``os.pathsep``-separated)
=====================  ==========================================================================

What :func:`configure_process` sets:

- Threads: PyTorch starts one intra-op thread per physical core of the machine, not per core this
  process may use. Under a cgroup CPU quota (containers, Slurm) or a restricted affinity mask that
  over-subscribes the allowed cores and slows every convolution. :func:`available_cpu_cores` reads
  both limits; :func:`configure_cpu_runtime` sets the thread count to it unless ``OMP_NUM_THREADS``
  (or ``MRISR_NUM_THREADS``) says otherwise.
- Allocator: glibc serves every allocation above 32 MiB with a fresh ``mmap`` and returns it to
  the system on ``free``, so each large activation tensor of a network (tens to hundreds of MiB
  for a batch of slices) is page-faulted in again, page by page, on every forward pass. Measured
  here (2 cores): cloning a 235 MB tensor takes 80 ms with the default and 25 ms once the
  allocator keeps freed memory (``M_MMAP_MAX`` 0, a high ``M_TRIM_THRESHOLD``). This is what
  Intel's PyTorch CPU tuning guide does with jemalloc/tcmalloc; ``mallopt`` needs no extra
  library. Skipped on non-glibc systems and when ``MRISR_KEEP_MALLOC`` is set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
from pathlib import Path

import torch

__all__ = [
    "RECOMPILE_LIMIT",
    "available_cpu_cores",
    "configure_cpu_runtime",
    "configure_process",
    "requested_recompile_limit",
]

RECOMPILE_LIMIT = 64
"""TorchDynamo recompilations allowed per function: the fused norm/activation kernel compiles one graph per
(activation, memory layout, dtype), more than dynamo's default limit of 8."""

_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
_M_MMAP_MAX = -4
_TRIM_THRESHOLD_BYTES = (1 << 31) - 1  # the largest value mallopt takes (an int): keep up to 2 GiB
_configured: dict[str, int | bool] = {}
_recompile_limit: list[int] = []  # set by configure_process, applied by the fused kernel when it compiles


def _cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by a cgroup quota (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), ``None`` if unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def available_cpu_cores() -> int:
    """Cores this process may use: the affinity mask, capped by a cgroup CPU quota (rounded up), >= 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, max(1, math.ceil(limit)))
    return max(1, cores)


def _keep_freed_memory() -> bool:
    """Ask glibc to serve large blocks from the heap and keep freed memory (see module docstring)."""
    if os.environ.get("MRISR_KEEP_MALLOC"):
        return False
    name = ctypes.util.find_library("c")
    if not name or "libc" not in name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # musl, macOS, Windows: no mallopt
        return False


def configure_cpu_runtime(num_threads: int | None = None) -> dict[str, int | bool]:
    """Set PyTorch's intra-op threads and the allocator once per process; returns what was set.

    Args:
        num_threads: threads to use; ``None`` = ``MRISR_NUM_THREADS``, else ``OMP_NUM_THREADS``, else
            :func:`available_cpu_cores`. An explicit value is applied even after an earlier call.

    Returns:
        ``{"threads": int, "allocator_tuned": bool}``.
    """
    if _configured and num_threads is None:
        return dict(_configured)
    if num_threads is None:
        env = os.environ.get("MRISR_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
        num_threads = int(env) if env and env.isdigit() and int(env) > 0 else available_cpu_cores()
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    torch.set_num_threads(num_threads)
    if "allocator_tuned" not in _configured:
        _configured["allocator_tuned"] = _keep_freed_memory()
    _configured["threads"] = torch.get_num_threads()
    return dict(_configured)


def configure_process(num_threads: int | None = None) -> dict[str, int | bool]:
    """Tune this process for the package: threads and allocator (:func:`configure_cpu_runtime`) now, and the
    TorchDynamo recompile limit (:data:`RECOMPILE_LIMIT`) when the fused kernel first compiles (importing
    TorchDynamo costs about 2 s, which a command that never compiles should not pay). Called by the entry
    points, never by library classes.

    Returns:
        ``{"threads": int, "allocator_tuned": bool, "recompile_limit": int}``.
    """
    settings = configure_cpu_runtime(num_threads)
    _recompile_limit[:] = [RECOMPILE_LIMIT]
    return {**settings, "recompile_limit": RECOMPILE_LIMIT}


def requested_recompile_limit() -> int | None:
    """The recompile limit :func:`configure_process` asked for, ``None`` when no entry point configured the process."""
    return _recompile_limit[0] if _recompile_limit else None
