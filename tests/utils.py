"""Helpers shared by the tests: NIfTI files and manifests of small synthetic volumes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pandas as pd


def write_nifti(
    path: str | Path,
    data: np.ndarray,
    affine: np.ndarray | None = None,
    *,
    dtype: npt.DTypeLike | None = None,
    qform_code: int | None = None,
    sform_code: int | None = None,
) -> Path:
    """Save ``data`` as a NIfTI-1 file at ``path`` (its folder is made if absent) and return the path.

    ``affine`` defaults to the identity (1 mm voxels, voxel (0, 0, 0) at the origin). ``dtype`` casts
    the data first; without it the data are written in their own dtype. ``qform_code`` and
    ``sform_code`` set the qform and the sform to ``affine`` with that code; left out, nibabel's
    defaults for a new image apply (qform code 0, sform code 2).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.eye(4) if affine is None else affine
    image = nib.Nifti1Image(data if dtype is None else np.asarray(data, dtype), affine)
    if qform_code is not None:
        image.set_qform(affine, code=qform_code)
    if sform_code is not None:
        image.set_sform(affine, code=sform_code)
    nib.save(image, str(path))
    return path


def write_manifest(
    path: str | Path, rows: Iterable[Mapping[str, Any]], affine: np.ndarray | None = None, **nifti: Any
) -> Path:
    """Write ``rows`` as a manifest CSV at ``path`` and return the path.

    Columns are the rows' keys in the order first seen; a key a row lacks leaves its cell empty. A
    cell may be a ``(file name, array)`` pair: the array is saved with :func:`write_nifti` (with
    ``affine`` and the ``nifti`` keywords: ``dtype``, ``qform_code``, ``sform_code``) under that name,
    relative to the manifest's folder, and the cell holds the name. Other cells are written as they are.
    """
    path = Path(path)
    table = []
    for row in rows:
        cells = {}
        for column, value in row.items():
            if isinstance(value, tuple):
                name, data = value
                write_nifti(path.parent / name, data, affine, **nifti)
                value = name
            cells[column] = value
        table.append(cells)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(table).to_csv(path, index=False)
    return path
