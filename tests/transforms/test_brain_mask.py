# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from pipeline.transforms.brain_mask import BrainMask, BrainMaskd, otsu_thresholds

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


def phantom(spacing=(1.5, 1.5, 1.5), skull: bool = True, seed: int = 0) -> tuple[MetaTensor, np.ndarray]:
    """A T1-like head of about 100 mm: ellipsoid brain (grey shell, white core) in a dark gap
    (CSF, bone) and a bright scalp shell, joined to the scalp by a thin bright bridge (an "optic
    nerve") at the front. Returns the (1, X, Y, Z) volume and the brain ellipsoid (X, Y, Z)."""
    spacing = np.asarray(spacing, dtype=np.float64)
    shape = tuple(int(round(n)) for n in np.array([100.0, 112.0, 96.0]) / spacing)
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    r_brain = np.sqrt((x / 34) ** 2 + (y / 42) ** 2 + (z / 32) ** 2)  # 1 on the brain's surface
    brain = r_brain <= 1
    vol = np.zeros(shape)
    if skull:
        r_head = np.sqrt((x / 46) ** 2 + (y / 54) ** 2 + (z / 44) ** 2)
        vol[r_head <= 1] = 120.0  # scalp
        vol[r_head <= 0.92] = 15.0  # bone
        vol[r_head <= 0.84] = 25.0  # CSF gap
        bridge = (np.abs(x - 8) <= 1.5) & (np.abs(z) <= 1.5) & (y > 0) & (r_head <= 0.92)
        vol[bridge] = 90.0
    vol[brain] = 80.0  # grey matter
    vol[r_brain <= 0.75] = 110.0  # white matter
    vol += np.random.default_rng(seed).normal(0, 4, shape) * (vol > 0)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-40.0, 12.0, 7.5]
    img = MetaTensor(torch.from_numpy(vol.clip(0).astype(np.float32))[None], affine=torch.from_numpy(affine))
    img.meta["filename_or_obj"] = "phantom.nii.gz"
    return img, brain


@pytest.mark.parametrize("spacing", [(1.5, 1.5, 1.5), (1.0, 1.0, 3.0), (3.0, 1.2, 1.2)])
def test_phantom_with_skull(spacing):
    img, brain = phantom(spacing)
    mask = BrainMask()(img)
    assert isinstance(mask, MetaTensor) and mask.dtype == torch.uint8 and mask.shape == img.shape
    torch.testing.assert_close(mask.affine, img.affine)
    assert dice(mask[0].numpy() > 0, brain) >= 0.95


def test_skull_stripped_input():
    img, brain = phantom(skull=False)
    mask = BrainMask()(img)[0].numpy() > 0
    assert dice(mask, img[0].numpy() > 0) >= 0.99 and dice(mask, brain) >= 0.98
    morphological = BrainMask(stripped_fraction=None)(img)[0].numpy() > 0
    assert dice(morphological, brain) >= 0.95


@pytest.mark.parametrize("as_type", ["numpy", "tensor"])
def test_array_types_and_dtype(as_type):
    img, brain = phantom((2.0, 2.0, 2.0))
    data = img.numpy() if as_type == "numpy" else img.as_tensor()
    mask = BrainMask(dtype=torch.bool)(data)  # plain arrays are taken as 1 mm isotropic
    assert type(mask) is type(data) and mask.shape == data.shape
    assert np.asarray(mask).dtype == np.bool_


def test_dict_version():
    img, brain = phantom((2.0, 2.0, 2.0))
    out = BrainMaskd(keys=["image", "missing"], mask_key=["brain", "other"], allow_missing_keys=True)({"image": img})
    assert set(out) == {"image", "brain"} and out["image"] is img
    torch.testing.assert_close(out["brain"].affine, img.affine)
    assert dice(out["brain"][0].numpy() > 0, brain) >= 0.95
    assert "mask" in BrainMaskd(keys="image")({"image": img})
    with pytest.raises(KeyError):
        BrainMaskd(keys="missing")({"image": img})


def test_otsu_thresholds():
    values = np.concatenate([np.full(500, 10.0), np.full(300, 50.0), np.full(200, 90.0)])
    (t,) = otsu_thresholds(values)
    assert 10 < t <= 50
    t1, t2 = otsu_thresholds(values, num_classes=3)
    assert 10 < t1 <= 50 < t2 <= 90


def test_ill_arg():
    for kwargs in (
        {"erosion_mm": -1.0},
        {"closing_mm": float("nan")},
        {"background_fraction": 1.0},
        {"tissue_scale": 0.0},
        {"stripped_fraction": 0.0},
        {"dtype": torch.float32},
    ):
        with pytest.raises(ValueError):
            BrainMask(**kwargs)
    with pytest.raises(ValueError, match="phantom.nii.gz.*shape"):
        img, _ = phantom((3.0, 3.0, 3.0))
        BrainMask()(torch.cat([img, img]))
    with pytest.raises(ValueError, match="no contrast"):
        BrainMask()(np.ones((1, 10, 10, 10), dtype=np.float32))
    with pytest.raises(ValueError, match="mask_key"):
        BrainMaskd(keys=["a", "b"], mask_key="mask")
    with pytest.raises(ValueError):
        otsu_thresholds(np.ones(10))
    with pytest.raises(ValueError):
        otsu_thresholds(np.arange(10), num_classes=4)


@pytest.mark.data
@pytest.mark.skipif(not (DATA / "colin27" / "ch2.nii.gz").exists(), reason="needs ../shared/data/colin27")
def test_colin27_dice():
    from pipeline.io import load_volume

    head = load_volume(DATA / "colin27" / "ch2.nii.gz")
    reference = load_volume(DATA / "colin27" / "ch2bet.nii.gz")[0].numpy() > 0
    mask = BrainMask()(head)
    torch.testing.assert_close(mask.affine, head.affine)
    assert dice(mask[0].numpy() > 0, reference) >= 0.95
