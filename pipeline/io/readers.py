# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Read 3D MR volumes into channel-first MONAI ``MetaTensor`` objects with a RAS affine.

Formats: NIfTI (``.nii``, ``.nii.gz``) through nibabel, keeping the header's qform/sform codes;
MetaImage (``.mha``, ``.mhd``), NRRD (``.nrrd``, ``.nhdr``) and DICOM series folders through
ITK (MONAI's ``ITKReader``, which turns ITK's LPS geometry into a RAS affine).

Every volume is checked: 3D (a 4D image with a single volume is squeezed), at least two voxels
along each axis, some finite values, not constant. Voxels that are NaN/inf in an otherwise valid
volume are set to 0 with a warning. Each failure raises an error naming the file and the problem.
"""

from __future__ import annotations

import gzip
import os
import warnings
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.data import ITKReader, MetaTensor

from pipeline.io.errors import ImageFileError, InvalidVolumeError

__all__ = ["NIFTI_SUFFIXES", "ITK_SUFFIXES", "load_volume", "check_volume"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except (EOFError, zlib.error, gzip.BadGzipFile, nib.filebasedimages.ImageFileError, ValueError, OSError) as err:
        raise ImageFileError(path, f"cannot read NIfTI (truncated or corrupt file?): {err}") from err
    header = img.header
    qform, qcode = header.get_qform(coded=True)
    sform, scode = header.get_sform(coded=True)
    meta = {
        "qform_code": int(qcode or 0),
        "sform_code": int(scode or 0),
        "pixdim": np.asarray(header["pixdim"], dtype=np.float64),
        "original_dtype": str(data.dtype),
    }
    return data, np.asarray(img.affine, dtype=np.float64), meta


def _read_itk(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    reader = ITKReader(affine_lps_to_ras=True)
    try:
        img = reader.read(str(path))
        data, itk_meta = reader.get_data(img)
    except Exception as err:  # ITK raises RuntimeError/ValueError/… with varying types per format
        raise ImageFileError(path, f"cannot read with ITK (truncated, corrupt or not a DICOM series?): {err}") from err
    meta = {"qform_code": 1, "sform_code": 1, "original_dtype": str(data.dtype)}
    return np.asarray(data), np.asarray(itk_meta["affine"], dtype=np.float64), meta


def check_volume(data: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Validate a spatial array read from ``path`` and return it as a 3D float32 array.

    Raises:
        InvalidVolumeError: not 3D (a 4D array with one volume is squeezed), fewer than two
            voxels along an axis, no finite value, or constant.
    """
    arr = np.asarray(data)
    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if arr.ndim == 5 and arr.shape[3] == 1 and arr.shape[4] == 1:
        arr = arr[..., 0, 0]
    if arr.ndim == 2 or (arr.ndim == 3 and min(arr.shape) == 1):
        raise InvalidVolumeError(path, f"is a 2D image (shape {tuple(arr.shape)}); a 3D volume is needed")
    if arr.ndim == 4:
        raise InvalidVolumeError(
            path, f"is a 4D image with {arr.shape[3]} volumes (shape {tuple(arr.shape)}); extract one 3D volume first"
        )
    if arr.ndim != 3:
        raise InvalidVolumeError(path, f"has {arr.ndim} dimensions (shape {tuple(arr.shape)}); a 3D volume is needed")
    arr = arr.astype(np.float32, copy=False)
    finite = np.isfinite(arr)
    if not finite.any():
        raise InvalidVolumeError(path, "contains no finite values (all NaN/inf)")
    if not finite.all():
        warnings.warn(f"{path}: {int((~finite).sum())} NaN/inf voxels set to 0", stacklevel=3)
        arr = np.where(finite, arr, 0.0).astype(np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    if lo == hi:
        raise InvalidVolumeError(path, f"is constant (every voxel = {lo:g}); there is no image content")
    return arr


def load_volume(path: str | os.PathLike) -> MetaTensor:
    """Load a 3D MR volume as a channel-first float32 ``MetaTensor`` of shape (1, X, Y, Z).

    Args:
        path: a ``.nii``/``.nii.gz``/``.mha``/``.mhd``/``.nrrd``/``.nhdr`` file, or a folder
            holding one DICOM series.

    Returns:
        ``MetaTensor`` whose ``affine`` maps voxel indices to RAS world coordinates (mm) and
        whose ``meta`` holds ``filename_or_obj``, ``qform_code``/``sform_code`` (kept for
        writing), ``original_affine``, ``spatial_shape`` and ``space`` ("RAS").

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImageFileError: unknown format, truncated or corrupt file.
        InvalidVolumeError: see :func:`check_volume`.

    Example::

        >>> img = load_volume("sub-01_T1w.nii.gz")
        >>> img.shape, img.affine.shape
        (torch.Size([1, 182, 218, 182]), torch.Size([4, 4]))
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    if p.is_dir():
        data, affine, meta = _read_itk(p)
    elif _suffix(p) in NIFTI_SUFFIXES:
        data, affine, meta = _read_nifti(p)
    elif _suffix(p) in ITK_SUFFIXES:
        data, affine, meta = _read_itk(p)
    else:
        raise ImageFileError(p, f"unknown image format '{_suffix(p)}' (use NIfTI, MHA/MHD, NRRD or a DICOM folder)")
    arr = check_volume(data, p)
    meta.update(
        {
            "filename_or_obj": str(p),
            "original_affine": affine.copy(),
            "spatial_shape": np.asarray(arr.shape),
            "space": "RAS",
        }
    )
    return MetaTensor(torch.from_numpy(np.ascontiguousarray(arr))[None], affine=torch.as_tensor(affine), meta=meta)
