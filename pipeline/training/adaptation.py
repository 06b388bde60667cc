# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Scan-specific self-supervised adaptation: fine-tune a bundle's network on the input itself.

The shipped weights were trained on one scanner's T1 scans. An input of another contrast or scanner
still carries its own high-resolution information, which serves as training data (SMORE, ECLARE;
"zero-shot" SR):

- **Through-plane** (:class:`~pipeline.inference.ThroughPlaneSR`): the in-plane axes are sharp. The
  in-plane planes are degraded along one in-plane axis with the input's own slice profile (thickness
  and spacing in output voxels, :func:`~pipeline.inference.input_acquisition`), interpolated back,
  and paired with the originals, with the degraded axis last, as the network sees the thick axis.
  Both in-plane axes are used.
- **In-plane and 3D networks** (:class:`~pipeline.inference.NetworkSR`): the input is degraded once
  more by the bundle's own protocol and paired with itself, at the same zoom. These pairs are one
  scale coarser than the task (ZSSR's "internal" examples), not the same scale as through-plane
  pairs are, and they can pull the network away from the finer scale: ``rrlsrn`` on the inverted-T1
  contrast of the MALF test scans (bicubic-x2) lost 2.2 dB with them (+6.94 -> +4.74 dB over cubic,
  learning rate 1e-4; 1e-5 lost 1.8 dB on scan 1004). Use it for a contrast the shipped weights fail on,
  and check the result.

A copy of the network is then fine-tuned (L1 loss, Adam, random patches inside the head, random
flips) for a bounded budget of steps and seconds, and the copy super-resolves the scan. The shipped
weights are never written; the adapted copy lives as long as the call.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor

from pipeline.acceleration import precision_context
from pipeline.inference.baselines import BASELINE_NAMES
from pipeline.inference.bundle_dirs import find_bundle
from pipeline.inference.methods import bundle_protocol, load_method
from pipeline.inference.network_method import NetworkSR, choose_slice_axis, to_network_input
from pipeline.scaling import network_intensity_mapping
from pipeline.inference.through_plane import ThroughPlaneSR, input_acquisition, simulate_thick_slices
from pipeline.protocols import Protocol, crop_to_multiple
from pipeline.training.patches import valid_patch_starts
from pipeline.training.volumes import input_zoom

__all__ = [
    "ADAPT_SUFFIX",
    "AdaptationBudget",
    "AdaptedSR",
    "adapt_network",
    "adaptation_pairs",
    "load_adaptable_method",
    "resolve_bundle_name",
]

ADAPT_SUFFIX = "+adapt"
"""A method name ending in this (``thick_slice+adapt``) is the bundle adapted to every input."""
HEAD_FRACTION = 0.05
"""Patch centres lie where the input exceeds this fraction of its robust maximum (the head)."""


@dataclass(frozen=True)
class AdaptationBudget:
    """How long to fine-tune: whichever of ``max_steps`` and ``max_seconds`` comes first.

    The defaults fit the issue's budget: a 256 x 256 x 40 thick-slice scan is adapted and
    super-resolved within 5 minutes on 2 CPU cores (measured in the thick_slice bundle's docs).

    Attributes:
        max_steps: optimiser steps at most.
        max_seconds: wall-clock seconds of fine-tuning at most.
        batch_size: patches per step.
        patch_size: patch edge in network-input voxels (2D: square; 3D: cube).
        learning_rate: Adam's step size.
        seed: seeds the patch sampling and flips (a run is repeatable given the step count).
    """

    max_steps: int = 300
    max_seconds: float = 180.0
    batch_size: int = 16
    patch_size: int = 48
    learning_rate: float = 3e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_steps < 1 or not self.max_seconds > 0 or self.batch_size < 1 or self.patch_size < 4:
            raise ValueError(f"adaptation budget must be positive (patch_size >= 4), got {self}")


def _head_mask(volume: torch.Tensor) -> torch.Tensor:
    """Voxels above :data:`HEAD_FRACTION` of the robust maximum of a scaled (1, ...) volume."""
    return volume > HEAD_FRACTION


def _through_plane_pairs(
    method: ThroughPlaneSR,
    lr: MetaTensor,
    zoom: Sequence[float],
    degradation: dict[str, Any] | None,
    overrides: dict[str, Any],
) -> tuple[list[dict[str, torch.Tensor]], dict[str, Any]]:
    """In-plane planes degraded along each in-plane axis with the input's slice profile (see module docstring)."""
    thick = int(np.argmax([abs(z - 1.0) for z in zoom]))
    acquisition = input_acquisition(lr, thick, degradation=degradation, **overrides)
    k = float(zoom[thick])
    output_spacing = acquisition.spacing_mm / k
    thickness, step = acquisition.thickness_mm / output_spacing, k
    shift, divisor = network_intensity_mapping(lr)
    data = (lr.as_tensor().float() - shift) / divisor
    pairs = []
    for degraded in (a for a in range(3) if a != thick):
        other = 3 - thick - degraded
        planes = data.permute(0, thick + 1, other + 1, degraded + 1)  # (1, across = thick axis, other, degraded)
        _, upsampled = simulate_thick_slices(planes, thickness, step, acquisition.profile)
        target = planes[..., : upsampled.shape[-1]]
        pairs.append({"lr": upsampled, "hr": target, "mask": _head_mask(target)})
    description = {
        "pairs": "in-plane planes degraded along each in-plane axis with the input's slice profile",
        "slice_axis": thick,
        "thickness_mm": acquisition.thickness_mm,
        "gap_mm": acquisition.gap_mm,
        "profile": acquisition.profile,
        "thickness_voxels": thickness,
        "step_voxels": step,
    }
    return pairs, description


def _bundle_protocol(method: NetworkSR) -> Protocol:
    """The degradation protocol the bundle was trained on (its metadata's ``degradation_protocol``)."""
    protocol = bundle_protocol(method)
    if protocol is None:
        raise ValueError(f"{method.name}: adaptation needs the bundle's degradation_protocol (configs/metadata.json)")
    return protocol


def _in_plane_pairs(
    method: NetworkSR, lr: MetaTensor, zoom: Sequence[float]
) -> tuple[list[dict[str, torch.Tensor]], dict[str, Any]]:
    """The input degraded once more by the bundle's protocol, paired with itself."""
    protocol = _bundle_protocol(method)
    if not np.allclose(protocol.zoom_for((1.0, 1.0, 1.0)), zoom, atol=1e-6):
        raise ValueError(
            f"{method.name}: adaptation pairs need the bundle's own zoom {protocol.zoom}, got {tuple(zoom)}"
        )
    target = crop_to_multiple(lr.float(), zoom)
    coarser = protocol.degrade(target)
    shift, divisor = network_intensity_mapping(coarser)
    network_input = to_network_input(coarser - shift if shift else coarser, zoom, method.upsampling)
    target_t = (target.as_tensor() - shift) / divisor
    pair = {"lr": network_input.as_tensor().float() / divisor, "hr": target_t, "mask": _head_mask(target_t)}
    return [pair], {"pairs": f"the input degraded once more by the bundle's protocol {protocol.name}"}


def adaptation_pairs(
    method: NetworkSR,
    lr: MetaTensor,
    zoom: Sequence[float],
    *,
    degradation: dict[str, Any] | None = None,
    acquisition_overrides: dict[str, Any] | None = None,
) -> tuple[list[dict[str, torch.Tensor]], tuple[int, int, int], int | None, dict[str, Any]]:
    """Self-supervised training volumes from the input alone, and how to cut patches from them.

    Returns:
        ``(pairs, zoom, slice_axis, description)``: each pair is ``{"lr": network input, "hr": target,
        "mask": patch-centre mask}``, (1, ...) tensors scaled as the network sees them; ``zoom`` (target
        voxels per input voxel) and ``slice_axis`` (2D networks; ``None`` for 3D) say how patches pair
        up; the description goes into the output's sidecar.
    """
    if isinstance(method, ThroughPlaneSR):
        pairs, description = _through_plane_pairs(method, lr, zoom, degradation, acquisition_overrides or {})
        return pairs, (1, 1, 1), 0, description
    if acquisition_overrides:
        raise ValueError(f"{method.name}: slice thickness, gap and profile apply to through-plane bundles only")
    pairs, description = _in_plane_pairs(method, lr, zoom)
    slice_axis = None
    if method.spatial_dims == 2:
        slice_axis = method.slice_axis if method.slice_axis is not None else choose_slice_axis(zoom)
    return pairs, input_zoom(zoom, method.upsampling), slice_axis, description


class _PatchPool:
    """Random aligned patch pairs from the adaptation volumes, with centres inside their masks.

    The candidate corners of every volume are found once (:func:`~pipeline.training.valid_patch_starts`),
    so a step only indexes and slices.
    """

    def __init__(
        self, pairs: list[dict[str, torch.Tensor]], patch: int, zoom: Sequence[int], slice_axis: int | None
    ) -> None:
        self.pairs, self.zoom, self.slice_axis = pairs, tuple(int(z) for z in zoom), slice_axis
        self.patches, self.candidates = [], []
        for pair in pairs:
            shape = pair["lr"].shape[1:]
            size = [1 if a == slice_axis else min(patch, n) for a, n in enumerate(shape)]
            starts = valid_patch_starts(pair["mask"][0].numpy(), shape, size, self.zoom)
            if len(starts) == 0:  # a blank or tiny input: any position
                starts = valid_patch_starts(np.ones(pair["mask"].shape[1:], bool), shape, size, self.zoom)
            self.patches.append(size)
            self.candidates.append(starts)

    def _crop(self, volume: torch.Tensor, start: Sequence[int], size: Sequence[int]) -> torch.Tensor:
        patch = volume[(slice(None), *(slice(s, s + n) for s, n in zip(start, size)))]
        return patch.squeeze(1 + self.slice_axis) if self.slice_axis is not None else patch

    def batch(self, count: int, rng: np.random.RandomState) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` pairs, each flipped at random along every patch axis, stacked to (B, 1, ...)."""
        lr_patches, hr_patches = [], []
        for _ in range(count):
            index = rng.randint(len(self.pairs))
            pair, size, starts = self.pairs[index], self.patches[index], self.candidates[index]
            start = starts[rng.randint(len(starts))]
            lr_patch = self._crop(pair["lr"], start, size)
            hr_patch = self._crop(
                pair["hr"], [s * z for s, z in zip(start, self.zoom)], [n * z for n, z in zip(size, self.zoom)]
            )
            for dim in range(1, lr_patch.ndim):
                if rng.rand() < 0.5:
                    lr_patch, hr_patch = lr_patch.flip(dim), hr_patch.flip(dim)
            lr_patches.append(lr_patch)
            hr_patches.append(hr_patch)
        return torch.stack(lr_patches).float(), torch.stack(hr_patches).float()


def adapt_network(
    method: NetworkSR,
    lr: MetaTensor,
    zoom: Sequence[float],
    budget: AdaptationBudget = AdaptationBudget(),
    *,
    degradation: dict[str, Any] | None = None,
    acquisition_overrides: dict[str, Any] | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Fine-tune a copy of ``method.network`` on self-supervised pairs from ``lr``.

    Args:
        method: a loaded bundle method (its network is not modified).
        lr: the input volume (1, X, Y, Z) on its own grid.
        zoom: the zoom the input will be super-resolved with.
        budget: steps, seconds, batch, patch and learning rate.
        degradation: the input's degradation record, if known (thick-slice: thickness, gap, profile).
        acquisition_overrides: through-plane only: ``thickness_mm``, ``gap_mm`` or ``profile`` to assume.

    Returns:
        ``(network, record)``: the adapted copy (eval mode) and what was done (steps, seconds, loss at
        the start and end as means over the first and last 10 steps, the pairs, the budget).
    """
    start = time.perf_counter()
    method.prepare()
    pairs, sampler_zoom, slice_axis, description = adaptation_pairs(
        method, lr, zoom, degradation=degradation, acquisition_overrides=acquisition_overrides
    )
    network = copy.deepcopy(method.network).to(method.device).eval()  # eval: BatchNorm statistics stay as trained
    for parameter in network.parameters():
        parameter.requires_grad_(True)
    optimizer = torch.optim.Adam(network.parameters(), lr=budget.learning_rate)
    pool = _PatchPool(pairs, budget.patch_size, sampler_zoom, slice_axis)
    rng = np.random.RandomState(budget.seed)
    losses: list[float] = []
    tuning_start = time.perf_counter()
    while len(losses) < budget.max_steps and time.perf_counter() - tuning_start < budget.max_seconds:
        inputs, targets = pool.batch(budget.batch_size, rng)
        with precision_context(method.device, method.precision):
            outputs = network(inputs.to(method.device))
        loss = torch.nn.functional.l1_loss(outputs.float(), targets.to(method.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    network.eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    record = {
        **description,
        "steps": len(losses),
        "seconds": round(time.perf_counter() - start, 2),
        "loss_start": float(np.mean(losses[:10])),
        "loss_end": float(np.mean(losses[-10:])),
        "loss": "L1 on intensities / robust maximum",
        "precision": method.precision,
        "budget": asdict(budget),
    }
    return network, record


class AdaptedSR:
    """A bundle method adapted to every input before it super-resolves it (``--adapt``).

    ``method(lr, zoom)`` fine-tunes a copy of the network on ``lr`` (:func:`adapt_network`), runs the
    copy. ``last_adapted`` (the adapted method) and ``last_adaptation`` (what was done, for the
    sidecar) describe the latest call only; ``last_runtime_s`` includes the fine-tuning. The wrapped
    bundle method stays in ``method``.

    Args:
        method: a loaded bundle method (``NetworkSR`` or ``ThroughPlaneSR``).
        budget: the fine-tuning budget.
        acquisition_overrides: through-plane: ``thickness_mm``, ``gap_mm``, ``profile`` to assume.
    """

    def __init__(
        self,
        method: NetworkSR,
        budget: AdaptationBudget = AdaptationBudget(),
        acquisition_overrides: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(method, NetworkSR):
            raise ValueError(f"{getattr(method, 'name', method)}: only network methods (bundles) can be adapted")
        self.method = method
        self.budget = budget
        self.acquisition_overrides = {k: v for k, v in (acquisition_overrides or {}).items() if v is not None}
        self.name = f"{method.name}{ADAPT_SUFFIX}"
        self.bundle_info = method.bundle_info
        self.last_adaptation: dict[str, Any] | None = None
        self.last_adapted: NetworkSR | None = None
        self.last_runtime_s: float | None = None

    def __getattr__(self, item: str) -> Any:
        return getattr(self.method, item)  # device, precision, fast, spatial_dims... of the wrapped method

    def __call__(self, lr: MetaTensor, zoom: Sequence[float]) -> MetaTensor:
        """Adapt to ``lr``, then super-resolve it (1, X, Y, Z) onto the grid zoomed by ``zoom``."""
        start = time.perf_counter()
        network, record = adapt_network(
            self.method,
            lr,
            zoom,
            self.budget,
            degradation=lr.meta.get("degradation"),
            acquisition_overrides=self.acquisition_overrides,
        )
        adapted = copy.copy(self.method)
        adapted.network = network
        adapted.name = self.name
        sr = adapted(lr, zoom)
        self.last_members = adapted.last_members
        self.last_adapted = adapted
        self.last_adaptation = record
        self.last_runtime_s = time.perf_counter() - start
        return sr


def load_adaptable_method(spec: str, **kwargs: Any) -> Any:
    """:func:`~pipeline.inference.load_method`, where ``<bundle>+adapt`` gives the bundle wrapped in :class:`AdaptedSR`.

    ``kwargs`` go to ``load_method`` (``device``, ``precision``, ``bundles_dir``).
    """
    if spec.endswith(ADAPT_SUFFIX):
        return AdaptedSR(load_method(spec[: -len(ADAPT_SUFFIX)], **kwargs))
    return load_method(spec, **kwargs)


def resolve_bundle_name(spec: str, bundles_dir: str | os.PathLike | None) -> str:
    """``spec`` with a bundle name replaced by the folder it resolves to, ``bundles_dir`` searched first.

    For callers that hand method specs on without ``bundles_dir`` (``mrisr evaluate`` to
    :func:`~pipeline.evaluation.evaluate_cohort`). A ``+adapt`` suffix is kept; baselines, folders and
    unknown names come back unchanged (and fail, if they do, where they are loaded).
    """
    base = spec[: -len(ADAPT_SUFFIX)] if spec.endswith(ADAPT_SUFFIX) else spec
    if base in BASELINE_NAMES or Path(base, "configs").is_dir():
        return spec
    found = find_bundle(base, bundles_dir)
    return spec if found is None else f"{found[0]}{spec[len(base):]}"
