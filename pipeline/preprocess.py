# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Preprocess one file: brain mask, N4 bias-field correction, intensity normalisation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.inference.sidecar import write_with_sidecar
from pipeline.io import check_outputs, load_mask, load_volume, save_nifti
from pipeline.transforms import BrainMask, N4BiasFieldCorrection, NormalizeIntensityInMask

__all__ = ["preprocess_file", "mask_path_for"]


def mask_path_for(output_path: str | os.PathLike) -> Path:
    """``x.nii.gz`` → ``x_mask.nii.gz``: where a computed brain mask is written."""
    path = Path(output_path)
    stem = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.stem
    return path.with_name(f"{stem}_mask.nii.gz")


def preprocess_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    mask_path: str | os.PathLike | None = None,
    n4: bool = True,
    normalize: bool = True,
    shrink_factor: int = 4,
    n4_iterations: tuple[int, ...] = (50, 50, 50, 50),
) -> dict[str, Any]:
    """Preprocess ``input_path`` into ``output_path`` (+ ``_mask.nii.gz`` and a JSON sidecar).

    Steps: brain mask (read from ``mask_path``, which must lie on the input's grid, or computed
    with :class:`BrainMask`), N4 inside the mask, robust percentile normalisation inside the mask.
    The sidecar records the steps and the normalisation parameters, so
    :class:`DenormalizeIntensity` can return to the input's units. The output paths are checked
    before any computation (:func:`~pipeline.io.check_outputs`).
    """
    images = [output_path] if mask_path is not None else [output_path, mask_path_for(output_path)]
    check_outputs(images, [input_path, mask_path])
    image = load_volume(input_path)
    steps: list[str] = []
    if mask_path is not None:
        mask = load_mask(mask_path, image)
        steps.append(f"mask from {mask_path}")
    else:
        mask = BrainMask()(image)
        steps.append("brain mask (BrainMask)")
    if n4:
        image = N4BiasFieldCorrection(shrink_factor=shrink_factor, iterations=n4_iterations)(image, mask=mask)
        steps.append(f"N4 (shrink {shrink_factor}, iterations {list(n4_iterations)})")
    normalization = None
    if normalize:
        image = NormalizeIntensityInMask()(image, mask=mask)
        normalization = image.meta.get("intensity_normalization")
        steps.append("percentile normalisation in mask")
    mask_file = mask_path_for(output_path) if mask_path is None else Path(mask_path).resolve()

    def mask_output() -> dict[str, str]:
        """The computed brain mask beside the output (none when the mask was given)."""
        if mask_path is None:
            save_nifti(mask, mask_file, dtype=np.uint8, inputs=[input_path])
        return {"mask": str(mask_file)}

    record = {
        "source": str(Path(input_path).resolve()),
        "steps": steps,
        "intensity_normalization": normalization,
    }
    return write_with_sidecar(image, output_path, record, inputs=[input_path, mask_path], side_outputs=mask_output)
