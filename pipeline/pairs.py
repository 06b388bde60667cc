# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""HR → (LR, HR, mask): the one builder of the scored triple, used by ``mrisr evaluate`` and by training.

Evaluation (:mod:`pipeline.evaluation.evaluate`) and training (:class:`pipeline.training.volumes.SynthesizeLRd`)
both call :func:`degraded_pair`, and both take a scan's brain mask from :func:`brain_mask`, so a scan is
cropped, degraded and masked the same way wherever it is scored.
"""

from __future__ import annotations

import os
import warnings
from typing import NamedTuple

import torch
from monai.data import MetaTensor
from monai.transforms import Compose

from pipeline.io import load_mask
from pipeline.protocols import Protocol, crop_to_multiple
from pipeline.transforms import BrainMask
from pipeline.transforms.brain_crop import brain_crops
from pipeline.transforms.grid import spacing_from_affine

__all__ = ["DegradedPair", "brain_mask", "degraded_pair"]


class DegradedPair(NamedTuple):
    """One scan's scored triple.

    Attributes:
        lr: (1, x, y, z) LR volume on the protocol's LR grid, in the HR's units.
        hr: (1, X, Y, Z) HR cropped to whole LR voxels (X = x · zoom), affine kept.
        mask: (1, X, Y, Z) boolean brain mask, cropped alike.
        zoom: HR voxels per LR voxel along each axis.
        extras: other (1, X, Y, Z) volumes on the HR grid (label maps), cropped alike.
    """

    lr: MetaTensor
    hr: MetaTensor
    mask: torch.Tensor
    zoom: tuple[float, float, float]
    extras: dict[str, torch.Tensor]


def brain_mask(hr: MetaTensor, mask_path: str | os.PathLike | None, name: str) -> tuple[torch.Tensor, str]:
    """A scan's (1, X, Y, Z) boolean brain mask and where it came from (``"manifest"`` or ``"BrainMask"``).

    Args:
        hr: (1, X, Y, Z) HR volume with its affine.
        mask_path: the manifest's mask file, checked against the HR grid (shape, affine, not empty);
            ``None``: computed from the HR with :class:`~pipeline.transforms.BrainMask`, with a warning.
        name: the scan, for the warning.
    """
    if mask_path is None:
        message = f"{name}: no mask in the manifest; computing the brain mask from the HR with BrainMask"
        warnings.warn(message, stacklevel=3)
        return BrainMask(dtype=torch.bool)(hr) > 0, "BrainMask"
    return load_mask(mask_path, hr) > 0, "manifest"


def degraded_pair(
    protocol: Protocol,
    hr: MetaTensor,
    mask: torch.Tensor,
    *,
    crop_to_mask: bool = False,
    extras: dict[str, torch.Tensor] | None = None,
    seed: int | None = None,
) -> DegradedPair:
    """Crop HR, mask and ``extras`` alike to whole LR voxels (and to the brain box), then degrade the HR.

    Args:
        protocol: the degradation.
        hr: (1, X, Y, Z) HR volume with its affine (its spacing sets the zoom of the thick-slice family).
        mask: (1, X, Y, Z) brain mask on the HR grid.
        crop_to_mask: also crop to the mask's bounding box plus a margin
            (:func:`~pipeline.transforms.brain_crop.brain_crops`).
        extras: other (1, X, Y, Z) volumes on the HR grid, cropped alike.
        seed: the degradation's random seed; ``None`` = the protocol's own.

    Raises:
        ValueError: the mask is empty after cropping, or the protocol made an LR of the wrong shape.
    """
    zoom = protocol.zoom_for(spacing_from_affine(hr.affine))
    extras = dict(extras or {})
    if crop_to_mask:
        data = {"hr": hr, "mask": MetaTensor(mask.to(torch.uint8), affine=hr.affine)}
        data.update({k: MetaTensor(v, affine=hr.affine) for k, v in extras.items()})
        cropped = Compose(brain_crops(zoom, crop_to_mask=True, keys=list(data)))(data)
        hr, mask = cropped["hr"], cropped["mask"]
        extras = {k: cropped[k] for k in extras}
    else:
        hr, mask = crop_to_multiple(hr, zoom), crop_to_multiple(mask, zoom)
        extras = {k: crop_to_multiple(v, zoom) for k, v in extras.items()}
    mask = torch.as_tensor(mask).as_subclass(torch.Tensor) > 0
    if not bool(mask.any()):
        raise ValueError(f"the brain mask is empty (protocol {protocol.name})")
    lr = protocol.degrade(hr, seed=seed)
    expected = tuple(int(round(n / z)) for n, z in zip(hr.shape[1:], zoom))
    if tuple(lr.shape[1:]) != expected:
        raise ValueError(f"protocol {protocol.name}: LR shape {tuple(lr.shape[1:])}, expected {expected}")
    return DegradedPair(lr=lr, hr=hr, mask=mask, zoom=tuple(float(z) for z in zoom), extras=extras)
