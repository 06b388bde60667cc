# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Write volumes as NIfTI atomically, keeping the source header's qform/sform codes."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor

from pipeline.io.atomic import atomic_path, ensure_not_input
from pipeline.io.outputs import check_output_path
from pipeline.transforms.grid import as_numpy_affine

__all__ = ["nifti_image", "save_nifti"]


def _to_numpy(img: torch.Tensor | np.ndarray) -> np.ndarray:
    arr = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3:
        raise ValueError(f"expected a (1, X, Y, Z) or (X, Y, Z) volume, got shape {arr.shape}")
    return arr


def nifti_image(
    img: MetaTensor | torch.Tensor | np.ndarray,
    *,
    affine: np.ndarray | torch.Tensor | None = None,
    qform_code: int | None = None,
    sform_code: int | None = None,
    dtype: np.dtype | type | None = np.float32,
) -> nib.Nifti1Image:
    """A 3D volume as an in-memory NIfTI image, with the header :func:`save_nifti` writes.

    Args:
        img: (1, X, Y, Z) or (X, Y, Z) volume. A ``MetaTensor`` provides the affine and the
            qform/sform codes unless given here.
        affine: (4, 4) voxel-to-world matrix (RAS mm); defaults to ``img.affine``.
        qform_code, sform_code: NIfTI codes; default to the source's (``img.meta``), else 1.
        dtype: data type (``None`` keeps the array's).

    Raises:
        ValueError: not a 3D volume, or a plain array without ``affine``.
    """
    meta = img.meta if isinstance(img, MetaTensor) else {}
    if affine is None:
        if not isinstance(img, MetaTensor):
            raise ValueError("an affine is needed for a plain array")
        affine = img.affine
    arr = _to_numpy(img)
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    nifti = nib.Nifti1Image(arr, as_numpy_affine(affine))
    qcode = int(meta.get("qform_code", 1) if qform_code is None else qform_code)
    scode = int(meta.get("sform_code", 1) if sform_code is None else sform_code)
    nifti.set_qform(nifti.affine, code=qcode)
    nifti.set_sform(nifti.affine, code=scode)
    nifti.header.set_xyzt_units("mm", "sec")
    return nifti


def save_nifti(
    img: MetaTensor | torch.Tensor | np.ndarray,
    path: str | os.PathLike,
    *,
    affine: np.ndarray | torch.Tensor | None = None,
    qform_code: int | None = None,
    sform_code: int | None = None,
    dtype: np.dtype | type | None = np.float32,
    inputs: Iterable[str | os.PathLike | None] = (),
) -> Path:
    """Save a 3D volume as NIfTI at ``path`` through a temporary file renamed on success.

    Args:
        img: (1, X, Y, Z) or (X, Y, Z) volume. A ``MetaTensor`` provides the affine, the
            qform/sform codes and its source file (``filename_or_obj``) unless given here.
        path: destination ``.nii`` or ``.nii.gz``.
        affine, qform_code, sform_code, dtype: as :func:`nifti_image`.
        inputs: further input files that must not be overwritten.

    Returns:
        The written path.

    Raises:
        OutputPathError: ``path`` cannot be written (:func:`~pipeline.io.check_output_path`).
        FileExistsError: ``path`` is the source file of ``img`` or one of ``inputs``.
        ValueError: see :func:`nifti_image` (naming ``path``).
    """
    meta = img.meta if isinstance(img, MetaTensor) else {}
    check_output_path(path)
    ensure_not_input(path, [meta.get("filename_or_obj"), *inputs])
    try:
        nifti = nifti_image(img, affine=affine, qform_code=qform_code, sform_code=sform_code, dtype=dtype)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    with atomic_path(path) as tmp:
        nib.save(nifti, str(tmp))
    return Path(path)
