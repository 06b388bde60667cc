# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Super-resolve whole 3D volumes with a trained 2D or 3D network.

3D networks run through MONAI's sliding-window inference over patches. 2D networks run slice-wise:
the volume's slices across ``slice_axis`` become a batch, and each batch of slices goes through
a 2D sliding window (MONAI's ``SliceInferer`` runs one slice at a time; batching the slices is
several times faster). Networks that upsample (output = factor × input size) are handled by the
inferer's zoom detection.

Patch borders: a convolution sees zero padding at a patch's edge where the whole volume has
real neighbours. ``margin`` = 0 blends patches with MONAI's modes (``blend_mode``); ``margin`` > 0
keeps only each patch's centre (:mod:`pipeline.inference.tiling`, as the mDCSRN paper does with 70³
patches and a margin of 3), which equals a whole-volume pass when the network's receptive-field
radius is at most ``margin``.

Speed (``fast``, on by default; :mod:`pipeline.acceleration`): the network is replaced by its
inference form (fused and rewritten layers, channels-last weights), inputs are fed channels-last,
autograd is off (``torch.inference_mode``), CPU threads match the cores this process may use, and
``precision`` chooses fp32, bf16 or fp16 (``auto``: what is measurably faster on this device).
``fast=False`` runs the trained module as it is, in fp32 unless ``precision`` says otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference
from tqdm import tqdm

from pipeline.acceleration import (
    PRECISIONS,
    channels_last_format,
    optimize_for_inference,
    precision_context,
    resolve_precision,
)
from pipeline.inference.device import auto_batch_size, resolve_device
from pipeline.inference.interpolation import INTERPOLATION_ORDERS, interpolate_volume
from pipeline.inference.kspace import zero_filled_upsample
from pipeline.scaling import network_intensity_mapping
from pipeline.inference.tiling import margin_crop_inference
from pipeline.transforms.grid import zoomed_affine

__all__ = ["UPSAMPLING_MODES", "NetworkSR", "choose_slice_axis", "to_network_input"]

Upsampling = Literal["network", "cubic", "linear", "nearest", "kspace"]
UPSAMPLING_MODES = ("network", "kspace", *INTERPOLATION_ORDERS)


def to_network_input(lr: MetaTensor, zoom: Sequence[float], upsampling: str) -> MetaTensor:
    """Bring an LR volume (1, x, y, z) onto a network's input grid (shared by training and inference).

    Args:
        lr: LR volume on the LR grid.
        zoom: HR voxels per LR voxel along each axis.
        upsampling: "network" (the network upsamples itself: the LR grid is kept), "kspace"
            (zero-filled k-space upsampling) or an interpolation ("nearest", "linear", "cubic").

    Returns:
        ``lr`` itself for "network", else (1, x·zx, y·zy, z·zz) on the HR grid.
    """
    if upsampling not in UPSAMPLING_MODES:
        raise ValueError(f"upsampling must be one of {UPSAMPLING_MODES}, got {upsampling!r}")
    if upsampling == "network":
        return lr
    if upsampling == "kspace":
        return zero_filled_upsample(lr, zoom)
    return interpolate_volume(lr, zoom, INTERPOLATION_ORDERS[upsampling])


def choose_slice_axis(zoom: Sequence[float]) -> int:
    """The spatial axis to slice across for a 2D network.

    The slices must contain the upsampled axes: slice across the last axis that is not upsampled
    (with no upsampling at all: axis 2, axial slices of a RAS-like volume).
    """
    z = np.asarray(zoom, dtype=float)
    untouched = np.flatnonzero(np.isclose(z, 1.0))
    if len(untouched) == 0:
        raise ValueError(f"a 2D network cannot upsample all three axes (zoom {tuple(z)}); use a 3D network")
    return int(untouched[-1])


class NetworkSR:
    """A trained SR network as a full-volume method: ``sr = method(lr, zoom)``.

    Steps: scale intensities by the LR's robust maximum (the same scaling used in training; a
    volume with large negative values, z-scored or CT-like, is first shifted by its robust
    minimum: :func:`~pipeline.scaling.network_intensity_mapping`); bring the LR onto
    the HR grid first when the network keeps the size (``upsampling`` = "cubic"/"linear"/"nearest"
    interpolation or "kspace" zero-filling); run the network patch-wise (3D) or slice-wise (2D);
    undo the scaling and the shift; set the SR grid's affine.

    Args:
        network: ``torch.nn.Module`` mapping (B, 1, *patch) to (B, 1, *patch × network factor).
        spatial_dims: 2 (slice-wise) or 3 (patch-wise).
        upsampling: "network" when the network itself upsamples (MRLNet, RRLSRN), otherwise the
            interpolation that puts the LR on the HR grid before the network.
        roi_size: patch size in voxels (3D) or in-plane slice tile size (2D); ``None`` for 2D
            means whole slices.
        overlap: sliding-window overlap fraction.
        margin: voxels cropped from each patch edge inside the volume (see the module
            docstring); 0 = MONAI sliding-window blending with ``overlap`` and ``blend_mode``.
        blend_mode: "constant" or "gaussian" (MONAI ``BlendMode``).
        batch_size: patches or slices per forward pass; ``None`` chooses from device memory.
        slice_axis: spatial axis (0-2) to slice across for 2D networks; ``None`` = from the zoom.
        device: "auto" (CUDA if present), "cpu", "cuda:0"...
        precision: "auto", "fp32", "bf16" or "fp16" (:func:`pipeline.acceleration.resolve_precision`);
            resolved on the first call, then in ``self.precision`` with the reason in
            ``self.precision_reason``.
        fast: run the network's inference form (see the module docstring); False runs it as trained.
        name: the method's name in outputs and tables.
        progress: show a progress bar over patches or slice batches (an attribute; may be set later).
        bundle_info: the bundle's name/version/path for output sidecars (``pipeline.inference.bundle_info``).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        *,
        spatial_dims: int,
        upsampling: Upsampling,
        roi_size: Sequence[int] | int | None = None,
        overlap: float = 0.25,
        margin: int = 0,
        blend_mode: str = "gaussian",
        batch_size: int | None = None,
        slice_axis: int | None = None,
        device: str | torch.device | None = "auto",
        precision: str = "auto",
        fast: bool = True,
        name: str = "network",
        bundle_info: dict[str, Any] | None = None,
        progress: bool = False,
    ) -> None:
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if upsampling not in UPSAMPLING_MODES:
            raise ValueError(f"unknown upsampling {upsampling!r}")
        if spatial_dims == 3 and roi_size is None:
            raise ValueError("a 3D network needs a roi_size (patch size in voxels)")
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if slice_axis is not None and slice_axis not in (0, 1, 2):
            raise ValueError(f"slice_axis must be 0, 1 or 2, got {slice_axis}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.device = resolve_device(device)
        self.network = network.to(self.device).eval()
        self.spatial_dims = spatial_dims
        self.upsampling = upsampling
        self.roi_size = roi_size
        self.overlap = overlap
        self.margin = margin
        self.blend_mode = blend_mode
        self.batch_size = batch_size
        self.slice_axis = slice_axis
        self.requested_precision = precision
        self.fast = fast
        self.precision: str | None = None
        self.precision_reason: str | None = None
        self.name = name
        self.progress = progress
        self.bundle_info = bundle_info
        self.last_runtime_s: float | None = None
        self.last_members: list[torch.Tensor] = []
        self._runner: torch.nn.Module = network

    def _calibration_sample(self) -> torch.Tensor:
        """An input for timing the network in fp32 and bf16 (``precision="auto"`` on some CPUs).

        Large enough to rank the precisions as whole volumes do: for mDCSRN on an Intel Xeon (AVX512-BF16),
        bf16 was 1.5x faster on a 24^3 patch but slower on 48^3 and on the whole brain box.
        """
        shape = (1, 1, 48, 48, 48) if self.spatial_dims == 3 else (2, 1, 64, 64)
        sample = torch.rand(shape, device=self.device)
        return sample.contiguous(memory_format=channels_last_format(self.spatial_dims)) if self.fast else sample

    def prepare(self) -> None:
        """Resolve the precision (once; the first call does it)."""
        if self.precision is None:
            runner = self._build_runner()
            self.precision, self.precision_reason = resolve_precision(
                self.requested_precision, self.device, runner, self._calibration_sample()
            )

    def _build_runner(self) -> torch.nn.Module:
        """The module that runs: the fast form of the network's current weights, or the network itself.

        Built anew for every volume, so a network still being trained (validation) is always seen
        with its latest weights. A ``DistributedDataParallel`` wrapper is unwrapped: its forward would
        synchronise buffers across ranks, which inference mode forbids and per-rank validation does not need.
        """
        network = self.network
        if isinstance(network, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
            network = network.module  # validation in multi-process training: each rank runs its own scans
        return optimize_for_inference(network, self.spatial_dims, self.device) if self.fast else network.eval()

    def _predict(self, batch: torch.Tensor) -> torch.Tensor:
        if self.fast:
            batch = batch.contiguous(memory_format=channels_last_format(batch.dim() - 2))
        return self._runner(batch)

    def _roi(self, shape: Sequence[int]) -> tuple[int, ...]:
        if self.roi_size is None:
            return tuple(shape)
        roi = [self.roi_size] * len(shape) if isinstance(self.roi_size, int) else list(self.roi_size)
        return tuple(min(int(r), int(s)) for r, s in zip(roi, shape))

    def _windows(self, batch: torch.Tensor, roi: Sequence[int], sw_batch_size: int) -> torch.Tensor:
        if self.margin > 0:
            return margin_crop_inference(
                batch, roi, self.margin, self._predict, sw_batch_size, self.device, self.progress
            )
        return sliding_window_inference(
            batch.to(self.device),
            roi_size=roi,
            sw_batch_size=sw_batch_size,
            predictor=self._predict,
            overlap=self.overlap,
            mode=self.blend_mode,
            padding_mode="replicate",
            progress=self.progress,
        )

    def _run_3d(self, volume: torch.Tensor) -> torch.Tensor:
        roi = self._roi(volume.shape[1:])
        sw_batch_size = self.batch_size or auto_batch_size(self.device, int(np.prod(roi)))
        return self._windows(volume[None], roi, sw_batch_size)[0]

    def _run_2d(self, volume: torch.Tensor, axis: int) -> torch.Tensor:
        slices = volume[0].movedim(axis, 0)[:, None]  # (S, 1, H, W)
        roi = self._roi(slices.shape[2:])
        batch = self.batch_size or auto_batch_size(self.device, int(np.prod(roi)))
        starts = tqdm(
            range(0, len(slices), batch),
            desc=f"{self.name} slices",
            unit="batch",
            leave=False,
            disable=not self.progress,
        )
        outputs = [self._windows(slices[i : i + batch], roi, batch).cpu() for i in starts]
        return torch.cat(outputs)[:, 0].movedim(0, axis)[None]

    def _infer(self, volume: torch.Tensor, zoom: Sequence[float]) -> list[torch.Tensor]:
        """The network's prediction(s) for a scaled (1, X, Y, Z) input volume on its input grid.

        One prediction here; a subclass may return several (an ensemble such as the two orientations
        of :class:`~pipeline.inference.ThroughPlaneSR`), which ``__call__`` averages.
        """
        if self.spatial_dims == 3:
            return [self._run_3d(volume)]
        axis = self.slice_axis if self.slice_axis is not None else choose_slice_axis(zoom)
        return [self._run_2d(volume, axis)]

    @torch.inference_mode()
    def __call__(self, lr: MetaTensor, zoom: Sequence[float]) -> MetaTensor:
        """Super-resolve a (1, X, Y, Z) LR volume onto the grid zoomed by ``zoom``.

        The members of an ensemble (:meth:`_infer`), in the input's intensity units, stay in
        ``self.last_members`` until the next call (one member for a plain network).

        Returns:
            (1, X·zx, Y·zy, Z·zz) float32 ``MetaTensor`` in the input's intensity units, with the
            zoomed grid's affine and the input's other metadata.
        """
        start = time.perf_counter()
        self.prepare()
        self._runner = self._build_runner()
        zoom = [float(z) for z in zoom]
        shift, scale = network_intensity_mapping(lr)
        source = to_network_input(lr - shift if shift else lr, zoom, self.upsampling)
        volume = source.as_tensor().float() / scale
        with precision_context(self.device, self.precision):
            members = self._infer(volume, zoom)
        self.last_members = [m.float().cpu() * scale + shift for m in members]
        out = torch.stack(self.last_members).mean(0) if len(members) > 1 else self.last_members[0]
        in_shape = np.asarray(lr.shape[1:])
        actual_zoom = np.asarray(out.shape[1:]) / in_shape
        if not np.allclose(actual_zoom, zoom, atol=0.5 / in_shape.min()):
            raise RuntimeError(f"{self.name}: network output shape {tuple(out.shape[1:])} does not match zoom {zoom}")
        meta = {k: v for k, v in lr.meta.items() if k != "affine"}
        meta["spatial_shape"] = np.asarray(out.shape[1:])
        self.last_runtime_s = time.perf_counter() - start
        return MetaTensor(out, affine=torch.as_tensor(zoomed_affine(lr.affine, actual_zoom)), meta=meta)
