# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""JSON sidecars that travel with every written volume: what made it, from what, and how.

``sidecar_path`` lives in :mod:`pipeline.io.outputs` (the output checks need it) and is re-exported here.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import monai
import nibabel
import numpy as np
import scipy
import torch

import pipeline
from pipeline.io import atomic_write_json, save_nifti
from pipeline.io.outputs import sidecar_path

__all__ = [
    "LEGACY_ZOOM_KEYS",
    "read_sidecar",
    "sidecar_path",
    "software_versions",
    "with_zoom_key",
    "write_with_sidecar",
]

#: Older names of a record's ``"zoom"`` (the SR ratio, output voxels per input voxel per axis): ``"scale"``
#: in ``mrisr infer`` sidecars and their ``parameters``, ``"factors"`` in degradation records.
LEGACY_ZOOM_KEYS = ("scale", "factors")


def software_versions() -> dict[str, str]:
    """Versions of the software that shape the output."""
    return {
        "mrisr-pipeline": pipeline.__version__,
        "monai": monai.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "nibabel": nibabel.__version__,
        "python": platform.python_version(),
    }


def read_sidecar(image_path: str | os.PathLike) -> dict[str, Any] | None:
    """The sidecar of ``image_path`` as a dict, or ``None`` when there is none or it is unreadable."""
    path = sidecar_path(image_path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def with_zoom_key(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``record`` (a sidecar, its ``parameters`` or a degradation record) with its SR ratio under ``"zoom"``.

    Records written before the ratio was called ``zoom`` everywhere hold it under ``"scale"`` (``mrisr
    infer``) or ``"factors"`` (``mrisr degrade``, ``meta["degradation"]``): when ``"zoom"`` is absent the
    first of :data:`LEGACY_ZOOM_KEYS` present is renamed (key order kept). ``None`` stays ``None``.

    Example::

        >>> with_zoom_key({"method": "cubic", "scale": [2.0, 2.0, 1.0]})
        {'method': 'cubic', 'zoom': [2.0, 2.0, 1.0]}
    """
    if record is None:
        return None
    old = next((key for key in LEGACY_ZOOM_KEYS if key in record), None)
    if "zoom" in record or old is None:
        return dict(record)
    return {("zoom" if key == old else key): value for key, value in record.items()}


def write_with_sidecar(
    image: Any,
    output_path: str | os.PathLike,
    record: dict[str, Any],
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    side_outputs: Callable[[], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write ``image`` and its JSON sidecar so that the sidecar, written last, marks a complete job.

    The one write sequence of every command that makes a volume (infer, degrade, preprocess):

    1. remove the old sidecar: an old record must not describe a half-replaced output;
    2. ``side_outputs()``, when given, writes the job's other files (QC maps, a mask) and returns
       fields for the record;
    3. save ``image`` as NIfTI through a temporary name (:func:`pipeline.io.save_nifti`; ``inputs``
       are never overwritten);
    4. write the sidecar atomically: ``{"status": "complete", **record, **side fields, "software",
       "created"}``.

    Args:
        image: (1, X, Y, Z) ``MetaTensor`` with its affine.
        output_path: ``.nii`` or ``.nii.gz`` file.
        record: what made the output (JSON types).
        inputs: files the job read.
        side_outputs: writes the other outputs; returns the record fields that describe them.

    Returns:
        The sidecar dict.
    """
    sidecar = sidecar_path(output_path)
    sidecar.unlink(missing_ok=True)
    side_fields = side_outputs() if side_outputs is not None else {}
    save_nifti(image, output_path, inputs=inputs)
    full = {
        "status": "complete",
        **record,
        **side_fields,
        "software": software_versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_json(Path(sidecar), full)
    return full
