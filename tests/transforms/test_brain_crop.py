# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""brain_crops: box + margin, sizes divisible by the zoom, affine follows the crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose

from pipeline.transforms import BRAIN_CROP_MARGIN, brain_crops, zoom_divisor


def _volumes() -> dict[str, MetaTensor]:
    affine = torch.tensor([[0.0, 0, 1.2, -10], [-0.9, 0, 0, 20], [0, 3.0, 0, 5], [0, 0, 0, 1]], dtype=torch.float64)
    mask = torch.zeros(1, 60, 50, 40)
    mask[:, 20:31, 15:26, 12:19] = 1
    hr = torch.rand(1, 60, 50, 40) * mask
    return {"hr": MetaTensor(hr, affine=affine), "mask": MetaTensor(mask, affine=affine)}


def test_crop_to_mask_box_and_world_coordinates():
    data = _volumes()
    out = Compose(brain_crops((1.0, 2.0, 2.0), crop_to_mask=True))(data)
    shape = out["hr"].shape[1:]
    assert all(n % d == 0 for n, d in zip(shape, (1, 2, 2)))
    assert all(n >= box + 2 * BRAIN_CROP_MARGIN for n, box in zip(shape, (11, 11, 7)))
    assert out["mask"].sum() == data["mask"].sum()  # the whole brain is kept
    # the first brain voxel keeps its world position
    old = np.argwhere(data["mask"][0].numpy())[0]
    new = np.argwhere(out["mask"][0].numpy())[0]
    world = lambda a, v: (np.asarray(a, dtype=float) @ np.append(v, 1.0))[:3]  # noqa: E731
    np.testing.assert_allclose(world(out["hr"].affine, new), world(data["hr"].affine, old), atol=1e-6)


def test_crop_size_and_errors():
    out = Compose(brain_crops((2.0, 2.0, 1.0), crop_to_mask=True, crop_size=(16, 16, 9)))(_volumes())
    assert tuple(out["hr"].shape[1:]) == (16, 16, 9)
    with pytest.raises(ValueError, match="multiple of the zoom"):
        brain_crops((2.0, 2.0, 1.0), crop_to_mask=True, crop_size=(15, 16, 9))
    assert zoom_divisor((2.0, 1.5, 4.0, 0.5)) == [2, 3, 4, 1]  # 1.5: 3 HR voxels span 2 LR voxels
