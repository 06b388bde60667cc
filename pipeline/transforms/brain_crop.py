# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Crop an HR volume and its brain mask to the brain, keeping sizes that the protocol's zoom divides.

Used where a network is scored only inside the mask (validation, ``mrisr evaluate --crop-to-mask``):
for skull-stripped scans the mask-restricted metrics do not change, and a network runs on fewer
voxels (11–19 % fewer on the MALF val scans, 40 % fewer on MNI152). Built from MONAI's
``CropForegroundd`` / ``CenterSpatialCropd``, which update the MetaTensor affine, so the cropped
volumes keep their world coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence

from monai.transforms import CenterSpatialCropd, CropForegroundd, MapTransform

from pipeline.transforms.grid import zoom_divisor

__all__ = ["BRAIN_CROP_MARGIN", "brain_crops", "zoom_divisor"]

BRAIN_CROP_MARGIN = 8
"""HR voxels kept around the brain mask's bounding box."""


def brain_crops(
    zoom: Sequence[float],
    crop_to_mask: bool,
    roi_size: Sequence[int] | None = None,
    keys: Sequence[str] = ("hr", "mask"),
    mask_key: str = "mask",
) -> list[MapTransform]:
    """Dictionary crops of ``keys`` (channel-first, (1, X, Y, Z)) whose sizes stay multiples of the zoom.

    Args:
        zoom: HR/LR spacing ratio per axis, e.g. (2, 2, 1).
        crop_to_mask: crop to the ``mask_key`` bounding box plus :data:`BRAIN_CROP_MARGIN` voxels
            (clipped at the volume's edges, so the crop never grows the volume; rounding the size up
            to a multiple of the zoom may still pad up to zoom - 1 zero voxels).
        roi_size: then keep a central block of this size (HR voxels, multiples of the zoom);
            ``None`` keeps the whole box.
        keys: the volumes to crop alike.
        mask_key: the brain mask (nonzero = brain).

    Raises:
        ValueError: ``roi_size`` is not a multiple of the zoom.
    """
    divisor = zoom_divisor(zoom)
    if roi_size is not None and any(int(r) % d for r, d in zip(roi_size, divisor)):
        raise ValueError(f"roi_size {tuple(roi_size)} must be a multiple of the zoom {tuple(divisor)}")
    crops: list[MapTransform] = []
    if crop_to_mask:
        crops.append(
            CropForegroundd(
                list(keys),
                source_key=mask_key,
                margin=BRAIN_CROP_MARGIN,
                k_divisible=divisor,
                allow_smaller=True,
                start_coord_key=None,
                end_coord_key=None,
            )
        )
    if roi_size is not None:
        crops.append(CenterSpatialCropd(list(keys), roi_size))
    return crops
