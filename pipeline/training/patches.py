# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Random aligned LR/HR patch pairs whose centres lie inside the brain mask.

The network input may be on the LR grid (networks that upsample) or on the HR grid (networks fed
an interpolated LR). With ``zoom`` = HR voxels per input voxel (integers; all ones for interpolated
inputs), an input patch starting at voxel ``s`` with size ``p`` is paired with the HR patch starting
at ``s · zoom`` with size ``p · zoom``: both cover the same field of view (see
:mod:`pipeline.transforms.grid`). Patches never leave the volume; the HR patch's centre voxel
``s · zoom + (p · zoom) // 2`` is drawn uniformly among the mask voxels that can be such a centre.

For 2D networks a patch is one slice thick across ``slice_axis`` and that axis is dropped, so a
2D pair is ``lr`` (1, pa, pb) and ``hr`` (1, pa·za, pb·zb), with (a, b) the other two axes in order.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import MapTransform, Randomizable
from monai.transforms.traits import MultiSampleTrait

__all__ = ["RandPairedPatchd", "RandPairedPatchD", "RandPairedPatchDict", "valid_patch_starts"]


def valid_patch_starts(
    mask: np.ndarray, input_shape: Sequence[int], patch: Sequence[int], zoom: Sequence[int]
) -> np.ndarray:
    """Input-grid start corners of the patches whose HR centre voxel lies inside ``mask``.

    Args:
        mask: (X, Y, Z) boolean brain mask on the HR grid, shape ``input_shape · zoom``.
        input_shape: spatial shape (x, y, z) of the network input grid.
        patch: 3D patch size on the input grid (1 across the slice axis for 2D patches).
        zoom: HR voxels per input voxel along each axis.

    Returns:
        (N, 3) int64 array of start corners ``s`` (every patch lies inside the volume).
    """
    hr_patch = [p * z for p, z in zip(patch, zoom)]
    centre_offset = [h // 2 for h in hr_patch]
    counts = [n - p + 1 for n, p in zip(input_shape, patch)]
    centres = mask[tuple(slice(o, o + c * z, z) for o, c, z in zip(centre_offset, counts, zoom))]
    return np.argwhere(centres)


class RandPairedPatchd(Randomizable, MapTransform, MultiSampleTrait):
    """Sample ``num_samples`` aligned (LR, HR) patch pairs with centres inside the brain mask.

    Args:
        patch_size: patch size on the network input grid: 3 values for 3D, 2 (in-plane, the axes
            other than ``slice_axis`` in order) for 2D.
        zoom: HR voxels per input voxel along each of the 3 axes (integers; see
            :func:`pipeline.training.volumes.input_zoom`). Must be 1 across ``slice_axis`` for 2D.
        num_samples: pairs per call.
        slice_axis: for 2D patches, the axis (0-2) the slices are taken across; ``None`` for 3D.
        lr_key: network input (1, x, y, z) on the input grid.
        hr_key: HR target (1, x·zx, y·zy, z·zz).
        mask_key: brain mask on the HR grid, same shape as ``hr_key``.
        centre_key: where the HR voxel index (3,) of each patch's centre is written.

    Returns (per call):
        a list of ``num_samples`` dicts: ``lr_key`` (1, *patch) and ``hr_key`` (1, *patch·zoom) float32
        tensors, ``centre_key`` (3,) int64, and the input's other non-volume entries.

    Example::

        pairs = RandPairedPatchd([33, 33], zoom=(1, 1, 1), num_samples=8, slice_axis=2)(volumes)
        pairs[0]["lr"].shape  # (1, 33, 33)
    """

    def __init__(
        self,
        patch_size: Sequence[int],
        zoom: Sequence[int] = (1, 1, 1),
        num_samples: int = 1,
        slice_axis: int | None = None,
        lr_key: str = "lr",
        hr_key: str = "hr",
        mask_key: str = "mask",
        centre_key: str = "patch_centre",
    ) -> None:
        super().__init__([lr_key, hr_key, mask_key])
        if slice_axis is not None and slice_axis not in (0, 1, 2):
            raise ValueError(f"slice_axis must be 0, 1, 2 or None, got {slice_axis}")
        expected = 3 if slice_axis is None else 2
        if len(patch_size) != expected or any(int(p) < 1 for p in patch_size):
            raise ValueError(f"patch_size needs {expected} positive sizes, got {tuple(patch_size)}")
        if len(zoom) != 3 or any(int(z) != z or z < 1 for z in zoom):
            raise ValueError(f"zoom needs 3 integers >= 1, got {tuple(zoom)}")
        if slice_axis is not None and zoom[slice_axis] != 1:
            raise ValueError(f"2D patches need zoom 1 across slice_axis {slice_axis}, got {tuple(zoom)}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        patch = [int(p) for p in patch_size]
        if slice_axis is not None:
            patch.insert(slice_axis, 1)
        self.patch = tuple(patch)
        self.zoom = tuple(int(z) for z in zoom)
        self.num_samples = num_samples
        self.slice_axis = slice_axis
        self.lr_key, self.hr_key, self.mask_key, self.centre_key = lr_key, hr_key, mask_key, centre_key
        self._starts: np.ndarray = np.zeros((0, 3), dtype=np.int64)

    def randomize(self, candidates: np.ndarray) -> None:
        """Draw ``num_samples`` start corners (with replacement) from the (N, 3) ``candidates``."""
        self._starts = candidates[self.R.randint(0, len(candidates), size=self.num_samples)]

    def _crop(self, image: torch.Tensor, start: Sequence[int], size: Sequence[int]) -> torch.Tensor:
        patch = image[(slice(None), *(slice(s, s + n) for s, n in zip(start, size)))]
        tensor = patch.as_tensor() if hasattr(patch, "as_tensor") else patch
        if self.slice_axis is not None:
            tensor = tensor.squeeze(1 + self.slice_axis)
        return tensor.float().clone()

    def __call__(self, data: Mapping[Hashable, Any]) -> list[dict[Hashable, Any]]:
        lr, hr, mask = data[self.lr_key], data[self.hr_key], data[self.mask_key]
        input_shape = tuple(lr.shape[1:])
        expected_hr = tuple(n * z for n, z in zip(input_shape, self.zoom))
        if tuple(hr.shape[1:]) != expected_hr or tuple(mask.shape[1:]) != expected_hr:
            raise ValueError(
                f"HR {tuple(hr.shape[1:])} and mask {tuple(mask.shape[1:])} must be the input {input_shape} "
                f"times zoom {self.zoom} = {expected_hr}"
            )
        if any(p > n for p, n in zip(self.patch, input_shape)):
            raise ValueError(f"patch {self.patch} is larger than the input volume {input_shape}")
        mask_np = np.asarray(mask[0].detach().cpu().numpy() if isinstance(mask, torch.Tensor) else mask[0]) > 0
        candidates = valid_patch_starts(mask_np, input_shape, self.patch, self.zoom)
        if len(candidates) == 0:
            raise ValueError(f"no voxel of the brain mask can be the centre of a {self.patch} patch")
        self.randomize(candidates)
        rest = {k: v for k, v in data.items() if k not in (self.lr_key, self.hr_key, self.mask_key)}
        hr_patch = [p * z for p, z in zip(self.patch, self.zoom)]
        samples = []
        for start in self._starts:
            hr_start = [int(s) * z for s, z in zip(start, self.zoom)]
            sample = dict(rest)
            sample[self.lr_key] = self._crop(lr, start, self.patch)
            sample[self.hr_key] = self._crop(hr, hr_start, hr_patch)
            sample[self.centre_key] = torch.tensor([s + h // 2 for s, h in zip(hr_start, hr_patch)], dtype=torch.int64)
            samples.append(sample)
        return samples


RandPairedPatchD = RandPairedPatchDict = RandPairedPatchd
