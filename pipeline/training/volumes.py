# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Per-scan preparation for training and validation: load, synthesise the LR, scale, add a baseline.

Each step is a MONAI dictionary transform working on whole (1, X, Y, Z) volumes, so a
``CacheDataset`` can keep the result per scan and only the random patch sampling
(:mod:`pipeline.training.patches`) runs every epoch.

The network sees intensities divided by a robust maximum (:func:`robust_intensity_scale`), as in
:class:`pipeline.inference.NetworkSR`, which divides by the robust maximum of the LR volume it is
given (on the LR grid). ``scale_reference="lr"`` reproduces that exactly in training;
``scale_reference="hr"`` divides by the HR volume's robust maximum instead (0.5-2.5 % larger on the
MALF scans, depending on the protocol), which is what evaluation uses so that PSNR has the data
range 1 for every method.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform

from pipeline.inference.baselines import make_baseline
from pipeline.inference.network_method import UPSAMPLING_MODES, to_network_input
from pipeline.scaling import robust_intensity_scale
from pipeline.io import load_volume
from pipeline.pairs import brain_mask, degraded_pair
from pipeline.protocols import Protocol
from pipeline.transforms.grid import integer_zoom

__all__ = [
    "UPSAMPLING_MODES",
    "LoadVolumed",
    "SynthesizeLRd",
    "ToNetworkInputd",
    "BaselineSRd",
    "to_network_input",
    "input_zoom",
]

def input_zoom(zoom: Sequence[float], upsampling: str) -> tuple[int, int, int]:
    """HR voxels per network-input voxel: the protocol's (integer) zoom for "network", else all ones."""
    if upsampling != "network":
        return (1, 1, 1)
    return integer_zoom(zoom, "a network that upsamples")  # type: ignore[return-value]


class LoadVolumed(MapTransform):
    """Read the files named under ``keys`` with :func:`pipeline.io.load_volume` into (1, X, Y, Z) ``MetaTensor``.

    ``mask_key`` (default "mask"), when among ``keys``, is read with :func:`pipeline.io.load_mask`
    against the first other key's volume instead: checked to lie on that volume's grid (shape and
    affine) and to be non-empty (an all-ones mask is valid); returned as float32 0/1. A missing mask
    (``None``) is computed from that volume with ``BrainMask``, with a warning, as ``mrisr evaluate``
    does (:func:`pipeline.pairs.brain_mask`).
    """

    def __init__(self, keys: KeysCollection, mask_key: str = "mask", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.mask_key = mask_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        for key in keys:
            if key != self.mask_key:
                d[key] = load_volume(d[key])
        if self.mask_key in keys:
            image = next((d[key] for key in keys if key != self.mask_key), None)
            if image is None:
                raise ValueError(f"{d[self.mask_key]}: a mask needs its image among the keys {keys}")
            mask, _ = brain_mask(image, d[self.mask_key], str(d.get("scan_id", image.meta.get("filename_or_obj"))))
            d[self.mask_key] = mask.float()
        return d


class SynthesizeLRd(MapTransform):
    """Make the (LR, HR, mask) training triple of one scan from its HR volume with a named protocol.

    Steps: crop HR and mask to a multiple of the protocol's zoom; degrade the HR to the LR grid
    (``Protocol.degrade``, seeded); bring the LR to the network's input grid (:func:`to_network_input`);
    divide LR and HR by one robust maximum (see the module docstring).

    Args:
        protocol: the degradation (names are resolved at the boundary: ``get_protocol`` in the dataset builders).
        upsampling: the network's input grid, as ``NetworkSR.upsampling``: "network" keeps the LR grid
            (also used for validation, where ``NetworkSR`` does the upsampling itself).
        scale_reference: "lr" (the LR volume's robust maximum, as ``NetworkSR`` does) or "hr".
        hr_key: HR volume (1, X, Y, Z) in; cropped and scaled HR out.
        mask_key: brain mask on the HR grid (1, X, Y, Z) in; cropped boolean mask out.
        lr_key: where the scaled network input is written.
        intensity_divisor_key: where the divisor (a float, in the HR file's intensity units) is written.
        zoom_key: where the zoom (HR voxels per LR voxel, 3 floats, :meth:`Protocol.zoom_for` the HR's
            spacing) is written.
        seed: random seed of the degradation (noise); ``None`` = the protocol's own seed.

    Returns (per call):
        dict with ``lr_key`` (1, *input grid) float32, ``hr_key`` (1, X', Y', Z') float32 (X' = X cropped
        to a multiple of the zoom), ``mask_key`` (1, X', Y', Z') bool, ``intensity_divisor_key`` float,
        ``zoom_key``.
    """

    def __init__(
        self,
        protocol: Protocol,
        upsampling: str,
        *,
        scale_reference: Literal["lr", "hr"] = "lr",
        hr_key: str = "hr",
        mask_key: str = "mask",
        lr_key: str = "lr",
        intensity_divisor_key: str = "intensity_divisor",
        zoom_key: str = "zoom",
        seed: int | None = None,
    ) -> None:
        super().__init__([hr_key, mask_key])
        if upsampling not in UPSAMPLING_MODES:
            raise ValueError(f"upsampling must be one of {UPSAMPLING_MODES}, got {upsampling!r}")
        if scale_reference not in ("lr", "hr"):
            raise ValueError(f"scale_reference must be 'lr' or 'hr', got {scale_reference!r}")
        self.protocol = protocol
        self.upsampling = upsampling
        self.scale_reference = scale_reference
        self.hr_key, self.mask_key, self.lr_key = hr_key, mask_key, lr_key
        self.intensity_divisor_key = intensity_divisor_key
        self.zoom_key = zoom_key
        self.seed = seed

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        hr, mask = d[self.hr_key], d[self.mask_key]
        if hr.shape != mask.shape:
            raise ValueError(f"HR {tuple(hr.shape)} and mask {tuple(mask.shape)} shapes differ")
        pair = degraded_pair(self.protocol, hr.float(), mask, seed=self.seed)
        divisor = robust_intensity_scale(pair.lr if self.scale_reference == "lr" else pair.hr)
        d[self.lr_key] = to_network_input(pair.lr, pair.zoom, self.upsampling) / divisor
        d[self.hr_key] = pair.hr / divisor
        d[self.mask_key] = pair.mask
        d[self.intensity_divisor_key] = divisor
        d[self.zoom_key] = list(pair.zoom)
        return d


class ToNetworkInputd(MapTransform):
    """Bring an LR volume from its own grid to the network's input grid (:func:`to_network_input`).

    Used after :class:`SynthesizeLRd` ``(upsampling="network")`` when something must act on the LR on
    its own grid first (acquisition noise, :class:`~pipeline.transforms.domain.RandLRNoise`).

    Args:
        upsampling: the network's input grid, as ``NetworkSR.upsampling``.
        lr_key: the LR (1, x, y, z) in, the network input out.
        zoom_key: the zoom :class:`SynthesizeLRd` wrote.
    """

    def __init__(self, upsampling: str, lr_key: str = "lr", zoom_key: str = "zoom") -> None:
        super().__init__([lr_key])
        if upsampling not in UPSAMPLING_MODES:
            raise ValueError(f"upsampling must be one of {UPSAMPLING_MODES}, got {upsampling!r}")
        self.upsampling, self.lr_key, self.zoom_key = upsampling, lr_key, zoom_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        d[self.lr_key] = to_network_input(d[self.lr_key], d[self.zoom_key], self.upsampling)
        return d


class BaselineSRd(MapTransform):
    """Super-resolve ``lr_key`` (LR grid) with a non-learned baseline into ``output_key`` (HR grid).

    Args:
        zoom: HR voxels per LR voxel along each axis, used when the data has no ``zoom_key`` entry
            (:class:`SynthesizeLRd` writes one).
        baseline: a name from ``pipeline.inference.BASELINE_NAMES`` ("cubic" = cubic B-spline).
        lr_key: LR volume (1, x, y, z).
        output_key: where the (1, x·zx, y·zy, z·zz) baseline is written.
        zoom_key: the per-scan zoom, when present.
    """

    def __init__(
        self,
        zoom: Sequence[float],
        baseline: str = "cubic",
        lr_key: str = "lr",
        output_key: str = "baseline",
        zoom_key: str = "zoom",
    ) -> None:
        super().__init__([lr_key])
        self.zoom = [float(z) for z in np.broadcast_to(np.asarray(zoom, dtype=float), (3,))]
        self.method = make_baseline(baseline)
        self.output_key = output_key
        self.zoom_key = zoom_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        zoom = [float(z) for z in d.get(self.zoom_key, self.zoom)]
        for key in self.key_iterator(d):
            d[self.output_key] = self.method(d[key], zoom)
        return d
