# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""``super_resolve``: one call for pipelines written in Python (``from pipeline import super_resolve``).

It runs the code ``mrisr infer`` runs (:func:`~pipeline.inference.load_method`,
:func:`~pipeline.inference.super_resolve_volume`) on a volume given as a file path, a nibabel image or a
MONAI ``MetaTensor``, and returns the result in memory: nothing is written. For outputs on disk with a
JSON sidecar, QC, resume and cohorts, use ``mrisr infer`` or ``mrisr bids``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor

from pipeline.deprecation import renamed_to_zoom
from pipeline.inference import load_method, super_resolve_volume
from pipeline.qc.noise import check_input_noise
from pipeline.io import load_volume, nifti_image, volume_from_array

__all__ = ["ImageLike", "super_resolve"]

ImageLike = str | os.PathLike | nib.spatialimages.SpatialImage | MetaTensor
"""What :func:`super_resolve` takes: a file path, a nibabel image or a ``MetaTensor``."""


def _nibabel_volume(image: nib.spatialimages.SpatialImage) -> MetaTensor:
    """A nibabel image as a checked (1, X, Y, Z) ``MetaTensor``, its NIfTI qform/sform codes kept (else 1)."""
    header = image.header
    codes = {}
    if isinstance(header, nib.Nifti1Header):  # also NIfTI-2
        codes = {"qform_code": int(header["qform_code"]) or 1, "sform_code": int(header["sform_code"]) or 1}
    name = image.get_filename() or "image"
    return volume_from_array(np.asanyarray(image.dataobj), image.affine, name=name, **codes)


def _tensor_volume(image: MetaTensor) -> MetaTensor:
    """A (1, X, Y, Z) or (X, Y, Z) ``MetaTensor`` as a checked float32 (1, X, Y, Z) copy (the caller's is untouched)."""
    if image.ndim not in (3, 4) or (image.ndim == 4 and image.shape[0] != 1):
        raise ValueError(f"image: a MetaTensor of shape (1, X, Y, Z) or (X, Y, Z) is needed, got {tuple(image.shape)}")
    data = image.as_tensor()[0] if image.ndim == 4 else image.as_tensor()
    codes = {key: int(image.meta[key]) for key in ("qform_code", "sform_code") if key in image.meta}
    return volume_from_array(data, image.affine, **codes)


@renamed_to_zoom("scale")
def super_resolve(
    image: ImageLike,
    method: str | Any = "rrlsrn",
    *,
    device: str | torch.device = "auto",
    zoom: Sequence[float] | None = None,
    target_spacing: Sequence[float] | None = None,
    precision: str | None = None,
    bundle_dir: str | os.PathLike | None = None,
    scale: Sequence[float] | None = None,
) -> nib.Nifti1Image | MetaTensor:
    """Super-resolve one volume in memory, with the right affine and in the input's intensity units.

    Args:
        image: a path (NIfTI, MHA/NRRD or a DICOM folder), a nibabel image, or a ``MetaTensor`` of
            shape (1, X, Y, Z) or (X, Y, Z) with its affine (RAS mm).
        method: a baseline (``"cubic"``, ``"linear"``...), a bundle name or folder, or a method
            already loaded with :func:`~pipeline.inference.load_method` (load a bundle once and pass
            it to every call of a loop).
        device: where a bundle runs when ``method`` is a name: ``"auto"`` (a GPU when there is one),
            ``"cpu"``, ``"cuda:0"``...
        zoom: output voxels per input voxel along each axis (3 values, MONAI's ``Zoom`` sense), e.g.
            ``(2, 2, 1)``.
        target_spacing: output spacing in mm (3 values), instead of ``zoom``.
        precision: a bundle's numerical precision (``"auto"``, ``"fp32"``, ``"bf16"``, ``"fp16"``;
            default the bundle's).
        bundle_dir: a folder of bundles searched first for a bundle name.
        scale: deprecated alias of ``zoom`` (removed in 0.2.0).

        Without ``zoom`` or ``target_spacing`` the zoom comes, as in ``mrisr infer``, from a path's
        degradation sidecar (``mrisr degrade``), else from the method's own rule (``thick_slice``:
        isotropic from the header); a baseline or an in-plane bundle then raises a ``ValueError``.

    Returns:
        A path or a nibabel image gives a ``nibabel.Nifti1Image`` (float32, the input's qform/sform
        codes; nothing is written: ``nib.save`` it); a ``MetaTensor`` gives a ``MetaTensor`` of the
        input's rank. Either way the affine is the zoomed grid's: the same field of view in world
        coordinates, voxels ``1 / zoom`` times the input's.

    Raises:
        ValueError: an unknown method, no usable zoom, or an unusable volume (naming it);
        FileNotFoundError, OSError: a path that cannot be read.

    Warns:
        UserWarning: the input looks noisy (:func:`pipeline.qc.check_input_noise`) and ``method``'s bundle was
        trained on noise-free inputs only.

    Example::

        >>> import nibabel as nib
        >>> from pipeline import super_resolve
        >>> sr = super_resolve("sub-01_T1w_lr.nii.gz", method="rrlsrn", zoom=(2, 2, 1))
        >>> sr.shape, sr.header.get_zooms()
        ((182, 218, 91), (1.0, 1.0, 2.0))
        >>> nib.save(sr, "sub-01_T1w_sr.nii.gz")
        >>> thick = super_resolve(nib.load("sub-01_FLAIR.nii.gz"), method="thick_slice")  # zoom from the header
        >>> from pipeline.inference import load_method
        >>> srcnn = load_method("srcnn", device="cpu")  # loaded once for a loop
        >>> outputs = [super_resolve(volume, srcnn, zoom=(2, 2, 1)) for volume in volumes]  # MetaTensors in, out
    """
    zoom = zoom if scale is None else scale
    if isinstance(image, MetaTensor):
        lr, source = _tensor_volume(image), None
    elif isinstance(image, nib.spatialimages.SpatialImage):
        lr, source = _nibabel_volume(image), None
    elif isinstance(image, (str, os.PathLike)):
        lr, source = load_volume(image), image
    else:
        raise TypeError(f"image: expected a path, a nibabel image or a MetaTensor, got {type(image).__name__}")
    if isinstance(method, str):
        method = load_method(method, device=device, precision=precision, bundles_dir=bundle_dir)
    check_input_noise(method, lr, source or "image")
    sr, _, _ = super_resolve_volume(method, lr, source=source, zoom=zoom, target_spacing=target_spacing)
    if isinstance(image, MetaTensor):
        return sr if image.ndim == 4 else sr[0]
    return nifti_image(sr)
