# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Read 3D MR volumes into channel-first MONAI ``MetaTensor`` objects with a RAS affine.

Formats: NIfTI (``.nii``, ``.nii.gz``) through nibabel, keeping the header's qform/sform codes;
MetaImage (``.mha``, ``.mhd``), NRRD (``.nrrd``, ``.nhdr``) and DICOM series folders through
ITK (MONAI's ``ITKReader``, which turns ITK's LPS geometry into a RAS affine).

Before reading, a header's size is checked against the file (a corrupt NIfTI, MetaImage or NRRD
header claiming 32767³ voxels fails at once, not with a ``MemoryError``; a truncated file or a
missing ``.mhd``/``.nhdr`` data file is named as such) and every affine must be finite and
invertible. Every volume is checked: 3D (a 4D image with a single volume is squeezed), at least
two voxels along each axis, some finite values, not constant. Voxels that are NaN/inf in an
otherwise valid volume are set to 0, and values far outside the volume's robust range (a corrupt
voxel of 1e30 would spread through the cubic B-spline prefilter) are clipped, each with a warning
naming the file and the number of voxels. Brain masks (:func:`load_mask`) have their
own check: on the image's grid and not empty (an all-ones mask is valid). Each failure raises an
error naming the file and the problem.
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
from pipeline.io.itk_headers import DataLocation, data_location, header_shape
from pipeline.transforms.grid import as_numpy_affine

__all__ = [
    "NIFTI_SUFFIXES",
    "ITK_SUFFIXES",
    "MASK_AFFINE_TOLERANCE_MM",
    "load_volume",
    "load_mask",
    "check_volume",
    "check_mask",
    "volume_from_array",
]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")
MASK_AFFINE_TOLERANCE_MM = 1e-3  # a mask's affine may differ from its image's by rounding only
_SINGULAR_TOLERANCE = 1e-6  # smallest / largest singular value of a usable affine's 3x3 part
_MAX_DEFLATE_RATIO = 1032  # no gzip (deflate) stream expands to more than this times its size
_ROBUST_PERCENTILES = (0.1, 99.9)  # the robust range of a volume's values
_EXTREME_FACTOR = 10.0  # values beyond the robust range by more than this many times its width are clipped
_PERCENTILE_SAMPLE = 1_000_000  # voxels (every k-th) the robust range is estimated from


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _size_text(n_bytes: int) -> str:
    """``1234567`` → ``"1.2 MB"``."""
    value = float(n_bytes)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} PB"


def _check_nifti_size(path: Path, img: nib.Nifti1Image) -> None:
    """Raise before reading when the header's shape cannot fit in the file (corrupt header or truncated)."""
    shape = tuple(int(n) for n in img.header.get_data_shape())
    if 0 in shape:
        raise InvalidVolumeError(path, f"has an axis of 0 voxels (header shape {shape}); the image is empty")
    needed = int(img.dataobj.offset) + int(np.prod(shape, dtype=object)) * img.header.get_data_dtype().itemsize
    size = path.stat().st_size
    compressed = _suffix(path) == ".nii.gz"
    if needed > (size * _MAX_DEFLATE_RATIO if compressed else size):
        raise ImageFileError(
            path,
            f"header claims shape {shape} ({_size_text(needed)}), more than a {'gzip ' if compressed else ''}file "
            f"of {_size_text(size)} can hold: corrupt header or truncated file",
        )


def _read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    unreadable = (EOFError, zlib.error, gzip.BadGzipFile, nib.filebasedimages.ImageFileError, ValueError, OSError)
    try:
        img = nib.load(str(path))
    except unreadable as err:
        raise ImageFileError(path, f"cannot read NIfTI (truncated or corrupt file?): {err}") from err
    _check_nifti_size(path, img)
    try:
        data = np.asanyarray(img.dataobj)
    except unreadable as err:
        raise ImageFileError(path, f"cannot read NIfTI (truncated or corrupt file?): {err}") from err
    except MemoryError as err:
        raise ImageFileError(path, f"not enough memory to read shape {tuple(img.shape)}") from err
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


def _check_itk_size(path: Path) -> None:
    """Raise before reading when a MetaImage/NRRD header's data file is missing or cannot hold the claimed shape."""
    location = data_location(path)
    if location is None:
        return
    if location.field is not None and not location.file.is_file():
        raise ImageFileError(path, f"its data file {location.file} does not exist (the header's '{location.field}')")
    try:
        shape, needed = header_shape(path)
    except RuntimeError as err:
        raise ImageFileError(path, f"cannot read the header: {_itk_reason(err)}") from err
    problem = _too_little_data(shape, needed, location)
    if problem:
        raise ImageFileError(path, f"{problem}: truncated file or corrupt header")


def _too_little_data(shape: tuple[int, ...], needed: int, location: DataLocation) -> str | None:
    """How the data at ``location`` fall short of ``needed`` bytes for an image of ``shape``; ``None`` if they do not.

    Raw data must hold ``needed`` bytes; compressed data the size their header states, else at
    most ``_MAX_DEFLATE_RATIO`` times their size.
    """
    where = "the file" if location.field is None else str(location.file)
    kind = "compressed data" if location.compressed else "data"
    if location.compressed and location.stored is None:
        if needed <= location.available * _MAX_DEFLATE_RATIO:
            return None
        claim, held = _size_text(needed), _size_text(location.available)
    else:
        expected = location.stored if location.compressed else needed
        if expected <= location.available:
            return None
        claim, held = _sizes_text(expected, location.available)
        claim = f"{_size_text(needed)}, {claim} compressed" if location.compressed else claim
    return f"header claims shape {shape} ({claim}), more than the {held} of {kind} in {where} can hold"


def _sizes_text(first: int, second: int) -> tuple[str, str]:
    """Two sizes as text, in bytes where rounding would show them equal."""
    texts = _size_text(first), _size_text(second)
    return texts if texts[0] != texts[1] else (f"{first:,} bytes", f"{second:,} bytes")


def _itk_reason(err: Exception) -> str:
    """ITK's message without its source location and object address, and without a stale system reason.

    ITK appends ``Reason: <errno text>`` from an unrelated earlier call: "No such file or directory"
    for a file that exists.
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    kept = [line for line in lines if not line.endswith(":") and not line.startswith("Reason:")]
    text = " ".join(kept or lines)
    return text.split("): ", 1)[-1] if text.startswith("ITK ERROR:") else text


def _read_itk(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    if path.is_file():
        _check_itk_size(path)
    reader = ITKReader(affine_lps_to_ras=True)
    try:
        img = reader.read(str(path))
        data, itk_meta = reader.get_data(img)
    except Exception as err:  # ITK raises RuntimeError/ValueError/… with varying types per format
        problem = f"cannot read with ITK (truncated, corrupt or not a DICOM series?): {_itk_reason(err)}"
        raise ImageFileError(path, problem) from err
    meta = {"qform_code": 1, "sform_code": 1, "original_dtype": str(data.dtype)}
    return np.asarray(data), np.asarray(itk_meta["affine"], dtype=np.float64), meta


def _as_3d(data: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """``data`` as a 3D array with at least two voxels per axis (a 4D array with one volume is squeezed)."""
    arr = np.asarray(data)
    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if arr.ndim == 5 and arr.shape[3] == 1 and arr.shape[4] == 1:
        arr = arr[..., 0, 0]
    if arr.size == 0:
        raise InvalidVolumeError(path, f"has an axis of 0 voxels (shape {tuple(arr.shape)}); the image is empty")
    singletons = sum(n == 1 for n in arr.shape) if arr.ndim == 3 else 0
    if arr.ndim == 2 or singletons == 1:
        raise InvalidVolumeError(path, f"is a 2D image (shape {tuple(arr.shape)}); a 3D volume is needed")
    if singletons > 1:
        raise InvalidVolumeError(
            path, f"has a single voxel along {singletons} axes (shape {tuple(arr.shape)}); a 3D volume is needed"
        )
    if arr.ndim == 4:
        raise InvalidVolumeError(
            path, f"is a 4D image with {arr.shape[3]} volumes (shape {tuple(arr.shape)}); extract one 3D volume first"
        )
    if arr.ndim != 3:
        raise InvalidVolumeError(path, f"has {arr.ndim} dimensions (shape {tuple(arr.shape)}); a 3D volume is needed")
    return arr


def _clip_extremes(arr: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """``arr`` with values far outside its robust range clipped, with a warning naming ``path`` and the count.

    The robust range is the 0.1-99.9th percentiles (estimated from at most a million evenly spaced
    voxels); values beyond it by more than ``_EXTREME_FACTOR`` times its width are clipped there. A
    volume whose robust range is a single value is returned unchanged.
    """
    sample = arr.ravel()[:: max(1, arr.size // _PERCENTILE_SAMPLE)]
    low, high = (float(p) for p in np.percentile(sample, _ROBUST_PERCENTILES))
    margin = _EXTREME_FACTOR * (high - low)
    if margin == 0:
        return arr
    floor, ceiling = low - margin, high + margin
    extreme = int(np.count_nonzero((arr < floor) | (arr > ceiling)))
    if not extreme:
        return arr
    warnings.warn(
        f"{path}: {extreme} voxel(s) beyond {_EXTREME_FACTOR:g} times the robust range [{low:g}, {high:g}] "
        f"(0.1-99.9th percentiles) clipped to [{floor:g}, {ceiling:g}]",
        stacklevel=4,
    )
    return np.clip(arr, floor, ceiling).astype(np.float32, copy=False)


def check_volume(data: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Validate a spatial array read from ``path`` and return it as a 3D float32 array.

    NaN/inf voxels are set to 0 and values far outside the robust range clipped
    (:func:`_clip_extremes`), each with a warning.

    Raises:
        InvalidVolumeError: not 3D (a 4D array with one volume is squeezed), fewer than two
            voxels along an axis, no finite value, or constant.
    """
    arr = _as_3d(data, path).astype(np.float32, copy=False)
    finite = np.isfinite(arr)
    if not finite.any():
        raise InvalidVolumeError(path, "contains no finite values (all NaN/inf)")
    if not finite.all():
        warnings.warn(f"{path}: {int((~finite).sum())} NaN/inf voxels set to 0", stacklevel=3)
        arr = np.where(finite, arr, 0.0).astype(np.float32)
    arr = _clip_extremes(arr, path)
    lo, hi = float(arr.min()), float(arr.max())
    if lo == hi:
        raise InvalidVolumeError(path, f"is constant (every voxel = {lo:g}); there is no image content")
    return arr


def check_mask(data: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Validate a brain mask array read from ``path`` and return it as a 3D boolean array (voxels > 0.5).

    A mask may be constant (all ones: the whole field of view is brain); NaN counts as outside.

    Raises:
        InvalidVolumeError: not 3D, fewer than two voxels along an axis, or no voxel inside.
    """
    mask = np.nan_to_num(_as_3d(data, path).astype(np.float32, copy=False), nan=0.0) > 0.5
    if not mask.any():
        raise InvalidVolumeError(path, "is an empty mask (no voxel > 0.5)")
    return mask


def _check_affine(affine: np.ndarray, path: str | os.PathLike) -> None:
    """Raise unless the voxel-to-world matrix is finite and invertible (a 3D grid in world space)."""
    if not np.isfinite(affine).all():
        raise InvalidVolumeError(
            path, "has a non-finite affine (NaN/inf in the qform/sform): the voxel grid is undefined"
        )
    linear = affine[:3, :3]
    singular_values = np.linalg.svd(linear, compute_uv=False)
    if singular_values.min() <= _SINGULAR_TOLERANCE * singular_values.max():
        raise InvalidVolumeError(
            path,
            f"has a singular affine (rotation/zoom part {np.round(linear, 4).tolist()} maps voxels onto fewer "
            "than 3 dimensions): fix the header's qform/sform",
        )


def _read(path: str | os.PathLike) -> tuple[Path, np.ndarray, np.ndarray, dict]:
    """(path, data, RAS affine, meta) of an image file or DICOM folder, its affine checked."""
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
    _check_affine(affine, p)
    return p, data, affine, meta


def _as_meta_tensor(p: Path | None, arr: np.ndarray, affine: np.ndarray, meta: dict) -> MetaTensor:
    """(1, X, Y, Z) ``MetaTensor`` of ``arr``; ``p`` ``None`` for an image in memory (no ``filename_or_obj``)."""
    meta.update({"original_affine": affine.copy(), "spatial_shape": np.asarray(arr.shape), "space": "RAS"})
    if p is not None:
        meta["filename_or_obj"] = str(p)
    return MetaTensor(torch.from_numpy(np.ascontiguousarray(arr))[None], affine=torch.as_tensor(affine), meta=meta)


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
        ImageFileError: unknown format, truncated or corrupt file, a header larger than its file.
        InvalidVolumeError: a singular or non-finite affine; see also :func:`check_volume`.

    Example::

        >>> img = load_volume("sub-01_T1w.nii.gz")
        >>> img.shape, img.affine.shape
        (torch.Size([1, 182, 218, 182]), torch.Size([4, 4]))
    """
    p, data, affine, meta = _read(path)
    return _as_meta_tensor(p, check_volume(data, p), affine, meta)


def volume_from_array(
    data: np.ndarray | torch.Tensor,
    affine: np.ndarray | torch.Tensor,
    *,
    name: str = "image",
    qform_code: int = 1,
    sform_code: int = 1,
) -> MetaTensor:
    """An image that lives in memory as :func:`load_volume` returns a file: checked the same way.

    Args:
        data: (X, Y, Z) array (an (X, Y, Z, 1) array, a 4D image with one volume, is squeezed).
        affine: (4, 4) voxel-to-world matrix (RAS mm); must be finite and invertible.
        name: what errors call the image.
        qform_code, sform_code: NIfTI codes kept in ``meta`` for writing (:func:`~pipeline.io.save_nifti`).

    Returns:
        (1, X, Y, Z) float32 ``MetaTensor`` (no ``filename_or_obj``: it has no file).

    Raises:
        InvalidVolumeError: see :func:`check_volume` and :func:`load_volume`.
    """
    array = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asanyarray(data)
    matrix = as_numpy_affine(affine)
    _check_affine(matrix, name)
    meta = {"qform_code": int(qform_code), "sform_code": int(sform_code), "original_dtype": str(array.dtype)}
    return _as_meta_tensor(None, check_volume(array, name), matrix, meta)


def load_mask(path: str | os.PathLike, image: MetaTensor) -> MetaTensor:
    """Load the brain mask of ``image`` as a boolean ``MetaTensor`` (1, X, Y, Z) on ``image``'s grid.

    Args:
        path: mask file (any format :func:`load_volume` reads); voxels > 0.5 are inside.
        image: the (1, X, Y, Z) volume the mask belongs to.

    Raises:
        FileNotFoundError, ImageFileError: as :func:`load_volume`.
        InvalidVolumeError: see :func:`check_mask`; or the mask's shape differs from the image's,
            or its affine does by more than ``MASK_AFFINE_TOLERANCE_MM`` (another grid).
    """
    p, data, affine, meta = _read(path)
    mask = check_mask(data, p)
    if mask.shape != tuple(image.shape[1:]):
        raise InvalidVolumeError(p, f"mask shape {mask.shape} differs from the image's {tuple(image.shape[1:])}")
    offset = np.abs(affine - as_numpy_affine(image.affine)).max()
    if offset > MASK_AFFINE_TOLERANCE_MM:
        raise InvalidVolumeError(
            p,
            f"mask affine differs from the image's by up to {offset:.3g} mm: the mask is on another grid; resample it",
        )
    return _as_meta_tensor(p, mask, affine, meta)
