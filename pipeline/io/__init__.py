# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Image input/output: read NIfTI/MHA/NRRD/DICOM into ``MetaTensor``, write NIfTI atomically."""

from __future__ import annotations

from pipeline.io.atomic import (
    atomic_path,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    ensure_not_input,
    read_json,
    remove_stale_temporaries,
    same_file,
)
from pipeline.io.errors import ImageFileError, InvalidVolumeError, OutputPathError, error_message
from pipeline.io.outputs import check_output_folder, check_output_path, check_outputs, sidecar_path
from pipeline.io.readers import check_mask, check_volume, load_mask, load_volume, volume_from_array
from pipeline.io.writers import nifti_image, save_nifti

__all__ = [
    "ImageFileError",
    "InvalidVolumeError",
    "OutputPathError",
    "atomic_path",
    "atomic_torch_save",
    "atomic_write_json",
    "atomic_write_text",
    "remove_stale_temporaries",
    "check_mask",
    "check_output_folder",
    "check_output_path",
    "check_outputs",
    "check_volume",
    "error_message",
    "ensure_not_input",
    "load_mask",
    "load_volume",
    "nifti_image",
    "read_json",
    "same_file",
    "save_nifti",
    "sidecar_path",
    "volume_from_array",
]
