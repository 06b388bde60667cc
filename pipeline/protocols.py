# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Named degradation protocols: how LR is made from HR, defined once for training and evaluation.

Every protocol produces its LR on the LR grid, so the interpolation baselines are meaningful and
the SR grid is the HR grid: the zoom (output voxels per LR voxel) undoes the degradation's grid
change. Axes are voxel axes of the (1, X, Y, Z) volume. ``slice_axis`` is the axis to slice
across for the most degraded plane (slice-wise metrics, 2D networks).

In-plane protocols change the grid by a fixed factor (``zoom``). The through-plane family
(:func:`thick_slice_protocol`, names ``thick-<T>mm[-gap<G>mm][-boxcar][-axis<A>]``, e.g.
``thick-5mm-gap1mm``) is defined in mm: slices of thickness ``T`` every ``S = T + G`` mm, so its
zoom depends on the HR spacing ``d`` along the slice axis (``S / d``, need not be whole;
:meth:`Protocol.zoom_for`). Its ``zoom`` attribute is the zoom for 1 mm HR voxels.

Any protocol name may end in ``+rician<P>`` (e.g. ``bicubic-x2+rician3``): the same degradation, then
Rician noise of standard deviation ``P`` % of the LR's robust maximum (:func:`with_rician_noise`), for
scoring the bundles on noisy inputs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Lambda, Transform

from pipeline.transforms.domain import RandLRNoise
from pipeline.transforms.grid import spacing_from_affine, zoom_divisor
from pipeline.transforms.lr_blur import BlurDownsample
from pipeline.transforms.lr_kspace import KSpaceTruncation
from pipeline.transforms.lr_resize import AntialiasedResize
from pipeline.transforms.lr_thick_slice import PROFILES, ThickSlice

__all__ = [
    "Protocol",
    "PROTOCOLS",
    "SliceAcquisition",
    "get_protocol",
    "protocol_name",
    "crop_to_multiple",
    "thick_slice_protocol",
    "with_rician_noise",
    "zoom_divisor",
]


@dataclass(frozen=True)
class SliceAcquisition:
    """A 2D multi-slice acquisition along one voxel axis, in mm.

    Attributes:
        thickness_mm: slice thickness ``T`` (the boxcar width or the Gaussian FWHM).
        gap_mm: gap ``G = S - T`` >= 0 between consecutive slices.
        profile: "gaussian" or "boxcar" slice profile.
        axis: the slice (through-plane) voxel axis, 0-2.
    """

    thickness_mm: float
    gap_mm: float = 0.0
    profile: str = "gaussian"
    axis: int = 2

    def __post_init__(self) -> None:
        if not (math.isfinite(self.thickness_mm) and self.thickness_mm > 0):
            raise ValueError(f"slice thickness must be a positive number of mm, got {self.thickness_mm!r}")
        if not (math.isfinite(self.gap_mm) and self.gap_mm >= 0):
            raise ValueError(f"slice gap must be >= 0 mm, got {self.gap_mm!r}")
        if self.profile not in PROFILES:
            raise ValueError(f"slice profile must be one of {PROFILES}, got {self.profile!r}")
        if self.axis not in (0, 1, 2):
            raise ValueError(f"slice axis must be 0, 1 or 2, got {self.axis!r}")

    @property
    def spacing_mm(self) -> float:
        """Slice spacing ``S = T + G`` in mm."""
        return self.thickness_mm + self.gap_mm

    def zoom_for(self, spacing: Sequence[float]) -> tuple[float, float, float]:
        """HR voxels per LR voxel for an HR grid of ``spacing`` mm: ``S / d`` along ``axis``, 1 elsewhere."""
        zoom = [1.0, 1.0, 1.0]
        zoom[self.axis] = self.spacing_mm / float(spacing[self.axis])
        return (zoom[0], zoom[1], zoom[2])

    def transform(self) -> ThickSlice:
        """The LR-synthesis transform (1, X, Y, Z) HR → LR grid."""
        return ThickSlice(self.thickness_mm, axis=self.axis, gap_mm=self.gap_mm, profile=self.profile)


@dataclass(frozen=True)
class Protocol:
    """A degradation protocol.

    Attributes:
        name: identifier used on the command line and in bundles (e.g. ``kspace-2x2``).
        description: one line for reports.
        make_transform: builds the array transform (1, X, Y, Z) HR → LR on the LR grid.
        zoom: output voxels per LR voxel along each axis (the inverse of the grid change).
        slice_axis: the axis to slice across: its slices contain all degraded axes.
        baselines: non-learned methods that fit this degradation.
        source: the paper whose degradation this is.
        acquisition: for the through-plane family, the slices in mm (``zoom`` then holds for 1 mm HR
            voxels; :meth:`zoom_for` gives it for any spacing); ``None`` for fixed-factor protocols.
    """

    name: str
    description: str
    make_transform: Callable[[], Transform]
    zoom: tuple[float, float, float]
    slice_axis: int
    baselines: tuple[str, ...] = ("nearest", "linear", "cubic")
    source: str = ""
    seed: int = field(default=0)
    acquisition: SliceAcquisition | None = None

    def zoom_for(self, spacing: Sequence[float]) -> tuple[float, float, float]:
        """HR voxels per LR voxel along each axis for an HR volume of ``spacing`` mm (3 values)."""
        return self.zoom if self.acquisition is None else self.acquisition.zoom_for(spacing)

    def degrade(self, hr: MetaTensor, seed: int | None = None) -> MetaTensor:
        """Apply the protocol to a (1, X, Y, Z) HR volume (cropped first to a multiple of the zoom).

        After the crop, every LR voxel covers a whole number of HR voxels, so the SR grid
        (the LR grid zoomed by :meth:`zoom_for`) is the cropped HR grid.
        """
        transform = self.make_transform()
        if hasattr(transform, "set_random_state"):
            transform.set_random_state(seed=self.seed if seed is None else seed)
        return transform(crop_to_multiple(hr, self.zoom_for(_spacing(hr))))


def _spacing(image: torch.Tensor) -> tuple[float, float, float]:
    """Voxel spacing (mm) of a (1, X, Y, Z) volume; 1 mm for a tensor without an affine."""
    if isinstance(image, MetaTensor):
        return tuple(float(s) for s in spacing_from_affine(image.affine))  # type: ignore[return-value]
    return (1.0, 1.0, 1.0)


def crop_to_multiple(image: torch.Tensor, zoom: Sequence[float]) -> torch.Tensor:
    """Crop the end of each spatial axis so its size is a multiple of :func:`zoom_divisor` there.

    Cropping at the end keeps voxel 0, so the affine is unchanged.
    """
    slices = [slice(None)]
    for size, step in zip(image.shape[1:], zoom_divisor(zoom)):
        slices.append(slice(0, size - size % step))
    return image[tuple(slices)]


_THICK_NAME = re.compile(
    r"^thick-(?P<t>\d+(?:\.\d+)?)mm(?:-gap(?P<g>\d+(?:\.\d+)?)mm)?(?P<boxcar>-boxcar)?(?:-axis(?P<axis>[0-2]))?$"
)


def _mm(value: float) -> str:
    return f"{value:g}"


def thick_slice_protocol(
    thickness_mm: float, gap_mm: float = 0.0, profile: str = "gaussian", axis: int = 2
) -> Protocol:
    """The through-plane protocol for ``thickness_mm`` slices with ``gap_mm`` gaps along ``axis``.

    Its name is ``thick-<T>mm[-gap<G>mm][-boxcar][-axis<A>]`` (Gaussian profile and axis 2 are the
    defaults and are not spelled out), which :func:`get_protocol` parses back.

    Example::

        >>> p = thick_slice_protocol(5.0, gap_mm=1.0)
        >>> p.name, p.zoom_for((0.9, 0.9, 1.0))
        ('thick-5mm-gap1mm', (1.0, 1.0, 6.0))
    """
    acquisition = SliceAcquisition(float(thickness_mm), float(gap_mm), profile, axis)
    name = f"thick-{_mm(acquisition.thickness_mm)}mm"
    if acquisition.gap_mm > 0:
        name += f"-gap{_mm(acquisition.gap_mm)}mm"
    if profile == "boxcar":
        name += "-boxcar"
    if axis != 2:
        name += f"-axis{axis}"
    gap = f" with {_mm(acquisition.gap_mm)} mm gaps" if acquisition.gap_mm > 0 else ", no gap"
    in_plane = tuple(a for a in range(3) if a != axis)
    return Protocol(
        name,
        f"{_mm(acquisition.thickness_mm)} mm {profile}-profile slices{gap} along axis {axis}",
        acquisition.transform,
        acquisition.zoom_for((1.0, 1.0, 1.0)),
        slice_axis=in_plane[0],
        baselines=("nearest", "linear", "cubic"),
        source="clinical 2D multi-slice acquisitions",
        acquisition=acquisition,
    )


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            "kspace-2x2",
            "k-space truncation keeping the central 1/2 x 1/2 along axes 1, 2 (4x fewer samples), LR grid",
            lambda: KSpaceTruncation((2, 2), axes=(1, 2), output_grid="lr"),
            (1.0, 2.0, 2.0),
            slice_axis=0,
            baselines=("nearest", "linear", "cubic", "kspace_zero_filled"),
            source="the mDCSRN paper",
        ),
        Protocol(
            "bicubic-x2",
            "antialiased bicubic downsampling x2 in-plane (axes 0, 1)",
            lambda: AntialiasedResize(2, axes=(0, 1)),
            (2.0, 2.0, 1.0),
            slice_axis=2,
            source="the MRLNet, MSRN-TV and RRLSRN papers",
        ),
        Protocol(
            "bicubic-x4",
            "antialiased bicubic downsampling x4 in-plane (axes 0, 1)",
            lambda: AntialiasedResize(4, axes=(0, 1)),
            (4.0, 4.0, 1.0),
            slice_axis=2,
            source="the RRLSRN paper (its x4 cascade)",
        ),
        Protocol(
            "blur-x2",
            "Gaussian PSF (FWHM = LR voxel) + decimation x2 in-plane (axes 0, 1), L = DSH",
            lambda: BlurDownsample(2, axes=(0, 1)),
            (2.0, 2.0, 1.0),
            slice_axis=2,
            source="the MFCN paper",
        ),
        Protocol(
            "blur-x3",
            "Gaussian PSF (FWHM = LR voxel) + decimation x3 in-plane (axes 0, 1), L = DSH",
            lambda: BlurDownsample(3, axes=(0, 1)),
            (3.0, 3.0, 1.0),
            slice_axis=2,
            source="the MFCN paper",
        ),
        thick_slice_protocol(4.0),
        thick_slice_protocol(5.0, gap_mm=1.0),
    )
}
"""The named protocols; any other ``thick-...`` name of the through-plane family is parsed on request."""


_RICIAN_SUFFIX = re.compile(r"^(?P<base>.+)\+rician(?P<percent>\d+(?:\.\d+)?)$")


def with_rician_noise(protocol: Protocol, percent: float) -> Protocol:
    """``protocol`` followed by Rician noise of standard deviation ``percent`` % of the LR's robust maximum.

    The noise is the magnitude of complex Gaussian noise on the LR grid
    (:class:`~pipeline.transforms.domain.RandLRNoise` at a fixed level), drawn from the protocol's seed:
    the same LR for the same scan every time. Named ``<protocol>+rician<percent>``.
    """
    if percent <= 0:
        raise ValueError(f"the noise level must be > 0 %, got {percent}")
    level = float(percent) / 100.0

    def record_noise(lr: torch.Tensor) -> torch.Tensor:
        if isinstance(lr, MetaTensor) and isinstance(lr.meta.get("degradation"), dict):
            noise = {"kind": "rician", "sd_fraction_of_robust_max": level}
            lr.meta["degradation"] = {**lr.meta["degradation"], "noise": noise}
        return lr

    def make_transform() -> Transform:
        noise = RandLRNoise(prob=1.0, max_std=level, min_std=level, kinds=("rician",))
        return Compose([protocol.make_transform(), noise, Lambda(record_noise)])

    return replace(
        protocol,
        name=f"{protocol.name}+rician{_mm(percent)}",
        description=f"{protocol.description}, then Rician noise (sd {_mm(percent)} % of the LR's robust maximum)",
        make_transform=make_transform,
    )


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name`` (a named one, any name of the ``thick-...`` family, either with ``+rician<P>``).

    Raises:
        ValueError: an unknown name (the message lists the named protocols and the family pattern).
    """
    noisy = _RICIAN_SUFFIX.match(name)
    if noisy is not None:
        return with_rician_noise(get_protocol(noisy["base"]), float(noisy["percent"]))
    if name in PROTOCOLS:
        return PROTOCOLS[name]
    match = _THICK_NAME.match(name)
    if match is None:
        raise ValueError(
            f"unknown protocol {name!r}; known: {sorted(PROTOCOLS)} or thick-<T>mm[-gap<G>mm][-boxcar][-axis<A>],"
            " optionally followed by +rician<P> (noise of P % of the LR's robust maximum)"
        )
    return thick_slice_protocol(
        float(match["t"]),
        gap_mm=float(match["g"] or 0.0),
        profile="boxcar" if match["boxcar"] else "gaussian",
        axis=int(match["axis"] or 2),
    )


def protocol_name(name: str) -> str:
    """``name`` if it names a protocol (an ``argparse`` type: a bad name is a usage error listing the known ones)."""
    import argparse

    try:
        return get_protocol(name).name
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
