# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Numerical precision of inference and training: ``auto``, ``fp32``, ``bf16`` or ``fp16``.

Reduced precision runs through ``torch.autocast`` (weights stay float32; convolutions and matrix
products run in the reduced type), on CPU and CUDA alike, so configs need no change between them.

``auto`` chooses, per device:

- CUDA: bf16 where the GPU supports it, else fp16.
- CPU: fp32 unless oneDNN has a native bf16 path on this CPU (AVX512-BF16 or AMX). With AMX, bf16.
  With AVX512-BF16 alone, whether bf16 is faster depends on the CPU and the layer shapes: on one
  development machine (an Intel Xeon with AVX512-BF16, no AMX) oneDNN's bf16 convolutions ran at
  0.6-0.7x the fp32 speed, on another (AMD EPYC, AVX512-BF16, no AMX) at 2-2.5x.
  So ``auto`` times the network itself in both precisions on a small input
  (:func:`measure_cpu_speedup`) and takes bf16 only when it is at least ``BF16_MIN_SPEEDUP``
  faster. The result is cached per CPU model, PyTorch version, thread count and network
  (``~/.cache/mrisr/cpu_precision.json``; ``MRISR_CACHE_DIR`` moves it) so that repeated runs on one
  machine make the same choice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

__all__ = [
    "machine_description",
    "PRECISIONS",
    "BF16_MIN_SPEEDUP",
    "autocast_dtype",
    "cpu_bf16_capability",
    "measure_cpu_speedup",
    "precision_context",
    "resolve_precision",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BF16_MIN_SPEEDUP = 1.15
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (``None`` for fp32)."""
    if precision not in PRECISIONS[1:]:
        raise ValueError(f"precision must be one of {PRECISIONS[1:]} once resolved, got {precision!r}")
    return _DTYPES.get(precision)


def cpu_bf16_capability() -> str:
    """``"amx"``, ``"avx512_bf16"`` or ``"none"``: the CPU's native bf16 support as oneDNN can use it."""
    if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return "none"
    if getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)():
        return "amx"
    if getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)():
        return "avx512_bf16"
    return "none"


def machine_description() -> str:
    """This machine in words for measured tables: cores, CPU model, bf16 support, GPU, e.g.
    ``"2-core Intel(R) Xeon(R) Processor (bf16: amx), no GPU"``."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()}-core {_cpu_model()} (bf16: {cpu_bf16_capability()}), {gpu}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cache_file() -> Path:
    root = os.environ.get("MRISR_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mrisr"
    return Path(root) / "cpu_precision.json"


def _network_key(network: torch.nn.Module, sample_shape: tuple[int, ...]) -> str:
    shapes = ";".join(f"{n}:{tuple(p.shape)}" for n, p in network.state_dict().items())
    digest = hashlib.sha1(f"{type(network).__name__}|{shapes}|{sample_shape}".encode()).hexdigest()[:16]
    return "|".join([_cpu_model(), torch.__version__, str(torch.get_num_threads()), digest])


def _seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _paired_speedup(fp32_run: Callable[[], object], bf16_run: Callable[[], object], rounds: int = 3) -> float:
    """The median over ``rounds`` of (fp32 time / bf16 time), the two timed back to back in each round.

    Pairing keeps most of a change in the machine's load (other processes on shared cores) out of the
    ratio, and ``auto`` keeps its first measurement (the cache). For mDCSRN's inference form on one thread
    of a 2-core AMD EPYC running two other jobs, 8 estimates each: paired 1.34 +- 0.08 (1.27-1.46), all
    fp32 runs then all bf16 runs 1.34 +- 0.14 (1.16-1.55), near ``BF16_MIN_SPEEDUP``.
    """
    fp32_run()  # warm-up: oneDNN primitive creation, weight reorders
    bf16_run()
    ratios = sorted(_seconds(fp32_run) / _seconds(bf16_run) for _ in range(rounds))
    return ratios[len(ratios) // 2]


def measure_cpu_speedup(network: torch.nn.Module, sample: torch.Tensor, training: bool = False) -> float:
    """fp32 time / bf16-autocast time of ``network(sample)`` on the CPU (> 1: bf16 is faster).

    ``training``: time a training step's compute (forward, then backward of the output's sum) instead
    of an inference forward pass; the two can disagree (mDCSRN on an AVX512-BF16 CPU without AMX:
    bf16 forward faster, forward + backward slower). Gradients accumulate in ``network``: pass a copy.
    """

    def forward() -> None:
        network(sample)

    def step() -> None:
        with torch.enable_grad():  # the first call may come from a no_grad block (a GAN's critic step)
            network(sample).float().sum().backward()

    run = step if training else forward

    def bf16_run() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            run()

    if training:
        return _paired_speedup(run, bf16_run)
    with torch.inference_mode():
        return _paired_speedup(run, bf16_run)


def _cached_cpu_choice(network: torch.nn.Module, sample: torch.Tensor, training: bool) -> tuple[str, float]:
    key = _network_key(network, tuple(sample.shape)) + ("|train" if training else "")
    path = _cache_file()
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]["precision"], float(cache[key]["bf16_speedup"])
    speedup = measure_cpu_speedup(network, sample, training)
    choice = "bf16" if speedup >= BF16_MIN_SPEEDUP else "fp32"
    cache[key] = {"precision": choice, "bf16_speedup": round(speedup, 3)}
    try:  # a read-only home only costs the measurement next time
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass
    return choice, speedup


def resolve_precision(
    precision: str,
    device: torch.device,
    network: torch.nn.Module | None = None,
    sample: torch.Tensor | None = None,
    training: bool = False,
) -> tuple[str, str]:
    """Turn a requested precision into ``fp32``/``bf16``/``fp16`` for ``device``, with the reason.

    Args:
        precision: one of :data:`PRECISIONS`.
        device: where the network runs.
        network: the network to time for ``auto`` on a CPU with AVX512-BF16 but no AMX.
        sample: a small input for that timing, on ``device``, in the network's memory format.
        training: time forward + backward (a training step) rather than an inference forward pass
            (:func:`measure_cpu_speedup`); ``network`` then gets gradients: pass a copy.

    Returns:
        ``(precision, reason)``, e.g. ``("fp32", "auto: bf16 measured 0.62x fp32 on this CPU")``.

    Raises:
        ValueError: for an unknown precision, or fp16 on a CPU without native fp16.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if device.type == "cuda":
        if precision != "auto":
            return precision, "requested"
        if torch.cuda.is_bf16_supported():
            return "bf16", "auto: GPU supports bf16"
        return "fp16", "auto: GPU without bf16"
    if device.type != "cpu":
        return ("fp32", f"auto: {device.type} device") if precision == "auto" else (precision, "requested")
    if precision == "fp16" and not (
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_fp16_supported()
    ):
        raise ValueError("precision fp16 needs a CPU with native fp16 (AVX512-FP16/AMX-FP16); use fp32 or bf16")
    if precision != "auto":
        return precision, "requested"
    capability = cpu_bf16_capability()
    if capability == "none":
        return "fp32", "auto: no native bf16 on this CPU"
    if capability == "amx":
        return "bf16", "auto: CPU has AMX-BF16"
    if network is None or sample is None:
        return "fp32", "auto: AVX512-BF16 without AMX and nothing to time"
    choice, speedup = _cached_cpu_choice(network, sample, training)
    step = "training step" if training else "network"
    return choice, f"auto: bf16 measured {speedup:.2f}x fp32 for this {step} on this CPU"


@contextlib.contextmanager
def precision_context(device: torch.device, precision: str) -> Iterator[None]:
    """``torch.autocast`` for a resolved precision on ``device`` (nothing for fp32)."""
    dtype = autocast_dtype(precision)
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield
