# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Through-plane SR of thick-slice scans: a 2D network on the two planes that contain the slice axis.

A 2D multi-slice acquisition is sharp in-plane and blurred and sparsely sampled along its slice
(thick) axis ``t``. The LR volume is interpolated (cubic B-spline) onto the output grid along ``t``;
the network then restores the planes that contain ``t``: the planes across each of the two in-plane
axes (for axial slices, the sagittal and the coronal planes). Each plane is presented with ``t`` as
its last axis, the orientation the network was trained in. The two orientations are averaged (as
SMORE and ECLARE fuse their orthogonal passes); with ``self_ensemble`` so are the runs on the input
flipped along ``t``, along both in-plane axes and along all three (8 members). The members' disagreement
is the uncertainty QC reports.

The output grid (:func:`isotropic_zoom`) keeps the in-plane grid and splits every slice into
``k = round(S / d)`` voxels (``S`` the slice spacing, ``d`` the finest in-plane spacing), so it is
isotropic when ``S / d`` is whole (4 mm slices at 1 mm, 4.5 mm at 0.9 mm) and the nearest such grid
otherwise; every LR slice covers exactly the output voxels it was averaged from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor

from pipeline.inference.interpolation import interpolation_matrix
from pipeline.inference.network_method import NetworkSR
from pipeline.protocols import SliceAcquisition
from pipeline.transforms.lr_common import apply_along_axis

__all__ = [
    "ANISOTROPY_RATIO",
    "ThroughPlaneSR",
    "input_acquisition",
    "isotropic_zoom",
    "simulate_thick_slices",
    "thick_axis",
    "through_plane_flips",
]

ANISOTROPY_RATIO = 1.5
"""A voxel axis is the slice axis when its spacing is at least this many times every other axis'."""


def thick_axis(spacing: Sequence[float], ratio: float = ANISOTROPY_RATIO) -> int:
    """The slice (thick) axis of a volume with voxel ``spacing`` (mm, 3 values).

    Raises:
        ValueError: no axis is ``ratio`` times coarser than both others (not a thick-slice scan).
    """
    values = np.asarray([float(s) for s in spacing])
    if values.shape != (3,) or np.any(values <= 0):
        raise ValueError(f"spacing must be three positive numbers of mm, got {tuple(spacing)}")
    axis = int(np.argmax(values))
    others = np.delete(values, axis)
    if values[axis] < ratio * others.max():
        raise ValueError(
            f"voxel spacing {tuple(float(v) for v in np.round(values, 3))} mm has no thick axis "
            f"(none is {ratio:g}x coarser than the others); pass --zoom or --target-spacing"
        )
    return axis


def isotropic_zoom(spacing: Sequence[float]) -> list[float]:
    """Output voxels per input voxel that make a thick-slice volume (nearly) isotropic.

    ``k = round(S / d)`` along the thick axis (:func:`thick_axis`), with ``S`` its spacing and ``d``
    the finest in-plane spacing; 1 in-plane.

    Example::

        >>> isotropic_zoom((0.9, 0.9, 4.5))
        [1.0, 1.0, 5.0]
    """
    axis = thick_axis(spacing)
    in_plane = min(float(s) for a, s in enumerate(spacing) if a != axis)
    zoom = [1.0, 1.0, 1.0]
    zoom[axis] = float(max(1, int(np.floor(float(spacing[axis]) / in_plane + 0.5))))
    return zoom


def through_plane_flips(thick: int) -> list[tuple[str, tuple[int, ...]]]:
    """The flips that keep a through-plane problem what it was: ``(name, spatial axes flipped)``.

    Along the slice axis ``thick``, along both in-plane axes, and along all three. A flip along one
    in-plane axis alone only reorders the planes of one orientation, which the network sees one by one.
    """
    in_plane = [a for a in range(3) if a != thick]
    return [
        (f"flip{thick}", (thick,)),
        (f"flip{in_plane[0]}{in_plane[1]}", tuple(in_plane)),
        ("flip012", (0, 1, 2)),
    ]


def input_acquisition(
    lr: MetaTensor,
    thick: int,
    *,
    degradation: Mapping[str, Any] | None = None,
    thickness_mm: float | None = None,
    gap_mm: float | None = None,
    profile: str | None = None,
) -> SliceAcquisition:
    """The slice acquisition of a thick-slice input: its forward model for adaptation and QC.

    A NIfTI header gives the slice spacing ``S`` only. Unless told otherwise, the slices are taken to
    be contiguous (thickness ``S``, no gap) with a Gaussian profile. A ``degradation`` record (from
    ``mrisr degrade`` or ``Protocol.degrade``) supplies ``thickness_mm``, ``gap_mm`` and ``profile``;
    explicit arguments override both. A gap is ``S - T``: given a thickness, the gap follows.

    Raises:
        ValueError: a thickness larger than the slice spacing, or a gap that does not add up to it.
    """
    spacing = float(np.linalg.norm(np.asarray(lr.affine, dtype=float)[:3, thick]))
    record = dict(degradation or {})
    if record.get("method") != "thick_slice":
        record = {}
    thickness = float(thickness_mm if thickness_mm is not None else record.get("thickness_mm", spacing))
    if gap_mm is not None:
        if thickness_mm is None:
            thickness = spacing - float(gap_mm)
        elif abs(thickness + float(gap_mm) - spacing) > 0.01 * spacing:
            raise ValueError(
                f"slice thickness {thickness:g} mm + gap {gap_mm:g} mm is not the slice spacing {spacing:g} mm"
            )
    if thickness > spacing * 1.01 or thickness <= 0:
        raise ValueError(f"slice thickness {thickness:g} mm must be > 0 and at most the slice spacing {spacing:g} mm")
    chosen_profile = profile or record.get("profile", "gaussian")
    return SliceAcquisition(thickness, max(0.0, spacing - thickness), chosen_profile, thick)


def simulate_thick_slices(
    volume: torch.Tensor,
    thickness: float,
    step: float,
    profile: str,
    offset: int = 0,
    slice_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Thick slices along the last axis of ``volume``, interpolated back onto its grid (training pairs).

    Args:
        volume: (C, A, B, N) plain tensor, isotropic voxels; the last axis becomes the slice axis.
        thickness: slice thickness in voxels (the profile's width or FWHM).
        step: slice spacing in voxels (thickness + gap; need not be whole).
        profile: "gaussian" or "boxcar" (:class:`~pipeline.transforms.ThickSlice`).
        offset: voxels dropped at the start of the last axis first (the slice phase).
        slice_transform: applied to the thick slices before they are interpolated (acquisition noise,
            :class:`~pipeline.transforms.domain.RandLRNoise`).

    Returns:
        ``(slices, upsampled)``: the (C, A, B, m) thick slices, and the slices cubic-B-spline-interpolated
        back onto the grid of ``volume[..., offset:offset + n_out]``, (C, A, B, n_out) float32, with
        ``n_out`` the voxels inside the slices' field of view: what :class:`ThroughPlaneSR` feeds its
        network.
    """
    voxel = MetaTensor(volume[..., offset:].float(), affine=torch.eye(4, dtype=torch.float64))
    acquisition = SliceAcquisition(max(thickness, 1.0), max(0.0, step - max(thickness, 1.0)), profile, 2)
    slices = acquisition.transform()(voxel).as_tensor()
    if slice_transform is not None:
        slices = torch.as_tensor(slice_transform(slices)).float()
    m = slices.shape[-1]
    n_out = min(int(math.floor(m * step + 1e-6)), voxel.shape[-1])
    return slices, apply_along_axis(slices, interpolation_matrix(m, n_out, step), 2).float()


class ThroughPlaneSR(NetworkSR):
    """A 2D network restoring the planes that contain the thick axis, in both orientations, fused.

    Args:
        network: 2D network mapping a (B, 1, H, W) interpolated plane, thick axis last (W), to the
            restored plane of the same size.
        orientations: "both" (default: average the two), or "first"/"second" (only the planes across
            the first/second in-plane axis, e.g. for timing).
        self_ensemble: also run on the input flipped as :func:`through_plane_flips` says and flip each
            output back (a geometric self-ensemble, as EDSR+): 4x the network runs, every member averaged.
        kwargs: as :class:`~pipeline.inference.NetworkSR` (``upsampling`` defaults to "cubic";
            ``spatial_dims`` is 2).

    ``method(lr, zoom)`` needs exactly one axis with zoom > 1 (the thick axis);
    :meth:`zoom_for_input` gives the default zoom from the input's voxel spacing. After a call,
    ``last_members`` holds the outputs that were averaged (input units): per run (the input as given,
    then each flip with ``self_ensemble``) one per orientation. Their spread is the uncertainty map.
    """

    def __init__(
        self, network: torch.nn.Module, *, orientations: str = "both", self_ensemble: bool = False, **kwargs: Any
    ) -> None:
        if orientations not in ("both", "first", "second"):
            raise ValueError(f"orientations must be 'both', 'first' or 'second', got {orientations!r}")
        kwargs.setdefault("upsampling", "cubic")
        if kwargs.pop("spatial_dims", 2) != 2:
            raise ValueError("ThroughPlaneSR runs a 2D network (spatial_dims=2)")
        super().__init__(network, spatial_dims=2, **kwargs)
        self.orientations = orientations
        self.self_ensemble = self_ensemble

    @staticmethod
    def zoom_for_input(spacing: Sequence[float]) -> list[float]:
        """The default zoom for an input of voxel ``spacing`` mm: :func:`isotropic_zoom`."""
        return isotropic_zoom(spacing)

    def _run_planes(self, volume: torch.Tensor, across: int, thick: int) -> torch.Tensor:
        """Run the network on the planes across ``across``, each with the ``thick`` axis last."""
        other = 3 - across - thick
        order = (across, other, thick)
        planes = volume.permute(0, *(a + 1 for a in order))
        out = self._run_2d(planes, 0)
        inverse = np.argsort(order)
        return out.permute(0, *(int(a) + 1 for a in inverse))

    def _infer(self, volume: torch.Tensor, zoom: Sequence[float]) -> list[torch.Tensor]:
        upsampled = [a for a, z in enumerate(zoom) if abs(z - 1.0) > 1e-6]
        if len(upsampled) != 1:
            raise ValueError(
                f"{self.name}: through-plane SR upsamples exactly one (thick) axis, got zoom {tuple(zoom)}"
            )
        thick = upsampled[0]
        in_plane = [a for a in range(3) if a != thick]
        chosen = {"both": in_plane, "first": in_plane[:1], "second": in_plane[1:]}[self.orientations]
        members = [self._run_planes(volume, across, thick) for across in chosen]
        for _, axes in through_plane_flips(thick) if self.self_ensemble else []:
            dims = [a + 1 for a in axes]  # (1, X, Y, Z): spatial axis a is tensor dim a + 1
            flipped = volume.flip(dims)
            members.extend(self._run_planes(flipped, across, thick).flip(dims) for across in chosen)
        return members
