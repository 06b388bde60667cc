# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Non-learned SR baselines with the same interface as :class:`~pipeline.inference.NetworkSR`."""

from __future__ import annotations

import time
from collections.abc import Sequence

from monai.data import MetaTensor

from pipeline.inference.interpolation import INTERPOLATION_ORDERS, interpolate_volume
from pipeline.inference.kspace import zero_filled_upsample

__all__ = ["BASELINE_NAMES", "InterpolationSR", "ZeroFilledKSpaceSR", "make_baseline"]

BASELINE_NAMES = ("nearest", "linear", "cubic", "kspace_zero_filled")


class InterpolationSR:
    """Spline interpolation onto the zoomed grid: "nearest", "linear" or "cubic" (B-spline)."""

    def __init__(self, kind: str) -> None:
        if kind not in INTERPOLATION_ORDERS:
            raise ValueError(f"kind must be one of {tuple(INTERPOLATION_ORDERS)}, got {kind!r}")
        self.name = kind
        self.order = INTERPOLATION_ORDERS[kind]
        self.last_runtime_s: float | None = None

    def __call__(self, lr: MetaTensor, zoom: Sequence[float]) -> MetaTensor:
        start = time.perf_counter()
        out = interpolate_volume(lr, zoom, self.order)
        self.last_runtime_s = time.perf_counter() - start
        return out


class ZeroFilledKSpaceSR:
    """Zero-filled k-space (sinc) upsampling, the natural baseline for k-space-truncated inputs."""

    name = "kspace_zero_filled"

    def __init__(self) -> None:
        self.last_runtime_s: float | None = None

    def __call__(self, lr: MetaTensor, zoom: Sequence[float]) -> MetaTensor:
        start = time.perf_counter()
        out = zero_filled_upsample(lr, zoom)
        self.last_runtime_s = time.perf_counter() - start
        return out


def make_baseline(name: str) -> InterpolationSR | ZeroFilledKSpaceSR:
    """A baseline method by name (one of :data:`BASELINE_NAMES`)."""
    if name == "kspace_zero_filled":
        return ZeroFilledKSpaceSR()
    if name in INTERPOLATION_ORDERS:
        return InterpolationSR(name)
    raise ValueError(f"unknown baseline {name!r}; choose from {BASELINE_NAMES}")
