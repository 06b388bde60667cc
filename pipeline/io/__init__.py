# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Image input/output: read NIfTI/MHA/NRRD/DICOM into ``MetaTensor``, write NIfTI atomically."""

from __future__ import annotations

from pipeline.io.atomic import atomic_path, atomic_write_json, atomic_write_text, ensure_not_input, remove_stale_temporaries
from pipeline.io.errors import ImageFileError, InvalidVolumeError
from pipeline.io.readers import check_volume, load_volume
from pipeline.io.writers import save_nifti

__all__ = [
    "ImageFileError",
    "InvalidVolumeError",
    "atomic_path",
    "atomic_write_json",
    "atomic_write_text",
    "remove_stale_temporaries",
    "check_volume",
    "ensure_not_input",
    "load_volume",
    "save_nifti",
]
