# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Training pairs for through-plane SR: random 2D multi-slice acquisitions of HR volumes.

Each access to a scan draws an acquisition (slice thickness, gap, profile, slice axis; a random
slice position too), makes the thick-slice LR with :class:`~pipeline.transforms.ThickSlice`,
interpolates it back onto the HR grid with the cubic B-spline the inference uses
(:func:`~pipeline.inference.interpolation.interpolation_matrix`, exact for non-integer spacing
ratios), and orders the axes as (across, in-plane, thick). 2D patches taken across axis 0 then show
the thick axis last, as :class:`~pipeline.inference.ThroughPlaneSR` presents planes to the network.
"""

from __future__ import annotations

import math
import os
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import CacheDataset
from monai.transforms import Compose, MapTransform, Randomizable, RandFlipd

from pipeline.scaling import network_intensity_mapping
from pipeline.inference.through_plane import simulate_thick_slices
from pipeline.protocols import SliceAcquisition
from pipeline.training.datasets import augmented_volumes, scan_records
from pipeline.training.patches import RandPairedPatchd
from pipeline.training.volumes import LoadVolumed
from pipeline.transforms.domain import RandLRNoise
from pipeline.transforms.grid import spacing_from_affine
from pipeline.transforms.lr_thick_slice import PROFILES

__all__ = ["RandThroughPlanePaird", "through_plane_training_dataset"]


class RandThroughPlanePaird(Randomizable, MapTransform):
    """A random thick-slice acquisition of an HR volume, interpolated back onto the HR grid.

    Args:
        thickness_mm: (min, max) slice thickness ``T`` in mm, drawn uniformly.
        gap_mm: (min, max) gap ``G`` in mm, drawn uniformly (slice spacing ``S = T + G``).
        profiles: slice profiles to draw from ("gaussian", "boxcar").
        axes: slice axes to draw from (0-2).
        max_planes: keep at most this many consecutive planes across the first axis (a slab around a
            random brain voxel) before simulating the acquisition: the patches of one access come from
            few planes anyway, and the slab makes an access 3-4x cheaper; ``None`` keeps the volume.
        hr_key: HR volume (1, X, Y, Z) ``MetaTensor`` in; HR out, reordered and cropped.
        mask_key: brain mask on the HR grid in; reordered and cropped boolean mask out.
        lr_key: where the network input (the LR interpolated onto the HR grid) is written.
        acquisition_key: where the drawn acquisition is written (a dict, for logs and tests).
        slice_noise: acquisition noise added to the thick slices before they are interpolated
            (:class:`~pipeline.transforms.domain.RandLRNoise`, seeded with this transform); ``None``: none.

    Returns (per call):
        ``lr_key``, ``hr_key`` (1, A, B, N) float32 and ``mask_key`` (1, A, B, N) bool, axes ordered as
        (across, in-plane, thick) with the two in-plane axes in random order; ``N`` is the thick axis
        cropped to the HR voxels inside the LR slices' field of view. Intensities are divided by the
        scaling :class:`~pipeline.inference.NetworkSR` computes from the LR volume.
    """

    def __init__(
        self,
        thickness_mm: Sequence[float] = (2.0, 6.0),
        gap_mm: Sequence[float] = (0.0, 1.0),
        profiles: Sequence[str] = PROFILES,
        axes: Sequence[int] = (0, 1, 2),
        max_planes: int | None = 48,
        hr_key: str = "hr",
        mask_key: str = "mask",
        lr_key: str = "lr",
        acquisition_key: str = "acquisition",
        slice_noise: RandLRNoise | None = None,
    ) -> None:
        super().__init__([hr_key, mask_key])
        if len(thickness_mm) != 2 or not 0 < thickness_mm[0] <= thickness_mm[1]:
            raise ValueError(f"thickness_mm must be (min, max) with 0 < min <= max, got {tuple(thickness_mm)}")
        if len(gap_mm) != 2 or not 0 <= gap_mm[0] <= gap_mm[1]:
            raise ValueError(f"gap_mm must be (min, max) with 0 <= min <= max, got {tuple(gap_mm)}")
        if not profiles or any(p not in PROFILES for p in profiles):
            raise ValueError(f"profiles must be among {PROFILES}, got {tuple(profiles)}")
        if not axes or any(a not in (0, 1, 2) for a in axes):
            raise ValueError(f"axes must be among (0, 1, 2), got {tuple(axes)}")
        self.thickness_mm = (float(thickness_mm[0]), float(thickness_mm[1]))
        self.gap_mm = (float(gap_mm[0]), float(gap_mm[1]))
        self.profiles = tuple(profiles)
        self.axes = tuple(int(a) for a in axes)
        if max_planes is not None and max_planes < 1:
            raise ValueError(f"max_planes must be >= 1 or None, got {max_planes}")
        self.max_planes = max_planes
        self.hr_key, self.mask_key, self.lr_key, self.acquisition_key = hr_key, mask_key, lr_key, acquisition_key
        self.slice_noise = slice_noise
        self._acquisition = SliceAcquisition(self.thickness_mm[0])
        self._first_in_plane = 0
        self._phase = 0.0
        self._slab_seed = 0.0

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandThroughPlanePaird:
        super().set_random_state(seed, state)
        if self.slice_noise is not None:
            self.slice_noise.set_random_state(state=self.R)
        return self

    def randomize(self, data: Any = None) -> None:
        """Draw the acquisition, which in-plane axis comes first, and the slice phase (a fraction)."""
        thickness = self.R.uniform(*self.thickness_mm)
        gap = self.R.uniform(*self.gap_mm)
        profile = self.profiles[self.R.randint(len(self.profiles))]
        axis = self.axes[self.R.randint(len(self.axes))]
        self._acquisition = SliceAcquisition(float(thickness), float(gap), profile, int(axis))
        self._first_in_plane = int(self.R.randint(2))
        self._phase = float(self.R.uniform())
        self._slab_seed = float(self.R.uniform())

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize()
        acq = self._acquisition
        hr, mask = d[self.hr_key], d[self.mask_key]
        spacing = float(spacing_from_affine(hr.affine)[acq.axis])
        in_plane = [a for a in range(3) if a != acq.axis]
        if self._first_in_plane:
            in_plane.reverse()
        order = (0, *(a + 1 for a in (in_plane[0], in_plane[1], acq.axis)))
        hr_t = hr.as_tensor().float().permute(*order)
        mask_t = mask.as_tensor().permute(*order) > 0
        if self.max_planes is not None and hr_t.shape[1] > self.max_planes:
            occupied = torch.nonzero(mask_t[0].flatten(1).any(dim=1)).flatten()
            centre = int(occupied[int(self._slab_seed * len(occupied))]) if len(occupied) else hr_t.shape[1] // 2
            start = min(max(0, centre - self.max_planes // 2), hr_t.shape[1] - self.max_planes)
            hr_t, mask_t = hr_t[:, start : start + self.max_planes], mask_t[:, start : start + self.max_planes]
        step, thickness = acq.spacing_mm / spacing, acq.thickness_mm / spacing
        offset = int(self._phase * math.ceil(step)) % max(1, hr_t.shape[-1] - int(math.ceil(step)))
        slices, lr_up = simulate_thick_slices(hr_t, thickness, step, acq.profile, offset, self.slice_noise)
        n_out = lr_up.shape[-1]
        hr_t, mask_t = hr_t[..., offset : offset + n_out], mask_t[..., offset : offset + n_out]
        shift, divisor = network_intensity_mapping(slices)
        d[self.lr_key] = (lr_up - shift) / divisor
        d[self.hr_key] = (hr_t - shift) / divisor
        d[self.mask_key] = mask_t
        d[self.acquisition_key] = {
            "thickness_mm": acq.thickness_mm,
            "gap_mm": acq.gap_mm,
            "profile": acq.profile,
            "axis": acq.axis,
            "step_voxels": step,
        }
        return d


def through_plane_training_dataset(
    manifest: str | os.PathLike,
    patch_size: Sequence[int],
    *,
    split: str = "train",
    data_root: str | os.PathLike | None = None,
    num_samples: int = 16,
    thickness_mm: Sequence[float] = (2.0, 6.0),
    gap_mm: Sequence[float] = (0.0, 1.0),
    profiles: Sequence[str] = PROFILES,
    axes: Sequence[int] = (0, 1, 2),
    max_planes: int | None = 48,
    max_scans: int | None = None,
    cache_rate: float = 1.0,
    num_workers: int = 0,
    seed: int = 0,
    domain: Mapping[str, Any] | None = None,
    box: Sequence[int] | None = None,
) -> CacheDataset:
    """Random through-plane patch pairs ``{"lr": (1, H, W), "hr": (1, H, W)}``, thick axis last (W).

    Every access to a scan draws a new acquisition (:class:`RandThroughPlanePaird`) and
    ``num_samples`` patches whose centres lie in the brain mask, each flipped at random along both
    axes. The loaded volumes are cached once per scan.

    Args:
        manifest: CSV manifest with ``hr`` and ``mask`` columns.
        patch_size: (H, W) patch size in HR voxels.
        split, data_root, num_samples, max_scans, cache_rate, num_workers, seed: as
            :func:`pipeline.training.training_dataset`.
        thickness_mm, gap_mm, profiles, axes, max_planes: the acquisitions drawn and the slab simulated
            per access (:class:`RandThroughPlanePaird`).
        domain, box: a domain-randomisation recipe and the box it acts on, as
            :func:`pipeline.training.training_dataset`; the recipe's noise goes on the thick slices.
    """
    if len(patch_size) != 2:
        raise ValueError(f"patch_size needs 2 sizes (in-plane, thick), got {tuple(patch_size)}")
    if domain is None:
        volumes, slice_noise = [LoadVolumed(["hr", "mask"])], None
    else:
        volumes, lr_noise = augmented_volumes(domain, box)
        slice_noise = lr_noise.noise
    transform = Compose(
        [
            *volumes,
            RandThroughPlanePaird(thickness_mm, gap_mm, profiles, axes, max_planes, slice_noise=slice_noise),
            RandPairedPatchd(patch_size, zoom=(1, 1, 1), num_samples=num_samples, slice_axis=0),
            RandFlipd(["lr", "hr"], prob=0.5, spatial_axis=0),
            RandFlipd(["lr", "hr"], prob=0.5, spatial_axis=1),
        ]
    )
    transform.set_random_state(seed=seed)
    records = scan_records(manifest, split, data_root=data_root, max_scans=max_scans, with_labels=domain is not None)
    return CacheDataset(
        records, transform, cache_rate=cache_rate, num_workers=num_workers, progress=False, copy_cache=False
    )
