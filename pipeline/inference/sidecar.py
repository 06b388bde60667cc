# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""JSON sidecars that travel with every written volume: what made it, from what, and how.

``sidecar_path`` lives in :mod:`pipeline.io.outputs` (the output checks need it) and is re-exported here.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Callable, Iterable
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

__all__ = ["sidecar_path", "software_versions", "read_sidecar", "write_with_sidecar"]


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
