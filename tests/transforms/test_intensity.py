# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from pipeline.transforms.intensity import (
    DenormalizeIntensity,
    DenormalizeIntensityd,
    NormalizeIntensityInMask,
    NormalizeIntensityInMaskd,
)

AFFINE = torch.tensor([[-0.9, 0, 0, 10.0], [0, 1.1, 0, -20.0], [0, 0, 2.5, 5.0], [0, 0, 0, 1]], dtype=torch.float64)


def _volume(seed: int = 0, shape=(20, 24, 16)) -> tuple[MetaTensor, np.ndarray]:
    """A (1, X, Y, Z) int16-range volume with a zero background and a box-shaped brain mask."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, dtype=bool)
    mask[4:-4, 5:-5, 3:-3] = True
    arr = np.where(mask, rng.normal(900, 200, shape), rng.uniform(0, 30, shape)).clip(0).astype(np.float32)
    img = MetaTensor(torch.from_numpy(arr)[None], affine=AFFINE.clone(), meta={"filename_or_obj": "sub-01_T1w.nii.gz"})
    return img, mask


@pytest.mark.parametrize("as_type", ["metatensor", "tensor", "numpy"])
@pytest.mark.parametrize("mask_shape", ["3d", "4d"])
def test_percentiles_mapped(as_type, mask_shape):
    img, mask = _volume()
    values = img[0].numpy()[mask]
    lo, hi = np.percentile(values, [0.5, 99.5])
    data = {"metatensor": img, "tensor": img.as_tensor(), "numpy": img.numpy()}[as_type]
    m = mask if mask_shape == "3d" else mask[None]
    out = NormalizeIntensityInMask()(data, mask=m)
    assert type(out) is type(data) and out.shape == data.shape
    out_np = np.asarray(out)
    assert out_np.dtype == np.float32
    np.testing.assert_allclose(np.percentile(out_np[0][mask], [0.5, 99.5]), [0.0, 1.0], atol=1e-5)
    assert out_np.min() < 0  # background below the 0.5th percentile: no clipping by default
    if as_type == "metatensor":
        params = out.meta["intensity_normalization"]
        assert params["a_min"] == pytest.approx(lo) and params["a_max"] == pytest.approx(hi)
        assert (params["b_min"], params["b_max"]) == (0.0, 1.0)
        json.dumps(params)  # serialisable
        torch.testing.assert_close(out.affine, AFFINE)
        assert "intensity_normalization" not in img.meta  # the input is not modified


@pytest.mark.parametrize("b_min, b_max, clip", [(0.0, 1.0, False), (-1.0, 1.0, False), (0.0, 255.0, True)])
def test_round_trip(b_min, b_max, clip):
    img, mask = _volume(1)
    normed = NormalizeIntensityInMask(lower=1.0, upper=99.0, b_min=b_min, b_max=b_max, clip=clip)(img, mask)
    if clip:
        assert normed.min() >= b_min and normed.max() <= b_max
    restored = DenormalizeIntensity()(normed)
    assert isinstance(restored, MetaTensor) and "intensity_normalization" not in restored.meta
    torch.testing.assert_close(restored.affine, AFFINE)
    p = normed.meta["intensity_normalization"]
    inside = (img >= p["a_min"]) & (img <= p["a_max"]) if clip else torch.ones_like(img, dtype=torch.bool)
    scale = float(img.max())
    np.testing.assert_allclose(restored[inside].numpy() / scale, img[inside].numpy() / scale, atol=1e-5)


def test_no_mask_uses_positive_voxels():
    img, _ = _volume(2)
    out = NormalizeIntensityInMask(lower=0.0, upper=100.0)(img)
    positive = img[0].numpy() > 0
    assert out[0][positive].min() == pytest.approx(0.0, abs=1e-6)
    assert out[0][positive].max() == pytest.approx(1.0, abs=1e-6)


def test_explicit_params_for_plain_arrays():
    img, mask = _volume(3)
    norm = NormalizeIntensityInMask()
    params = norm.compute_params(img.numpy(), mask)
    normed = norm(img.numpy(), mask)
    assert isinstance(normed, np.ndarray)
    restored = DenormalizeIntensity(params=params)(normed)
    np.testing.assert_allclose(restored, img.numpy(), rtol=1e-5, atol=1e-5 * float(img.max()))
    # params passed at call time win over the image's meta
    restored = DenormalizeIntensity()(torch.as_tensor(normed), params=params)
    np.testing.assert_allclose(restored.numpy(), img.numpy(), rtol=1e-5, atol=1e-5 * float(img.max()))


def test_dict_versions():
    img, mask = _volume(4)
    data = {"image": img, "mask": MetaTensor(torch.from_numpy(mask)[None].to(torch.uint8), affine=AFFINE)}
    out = NormalizeIntensityInMaskd(keys=["image", "other"], mask_key="mask", allow_missing_keys=True)(data)
    assert set(out) == {"image", "mask"} and out["mask"] is data["mask"]
    torch.testing.assert_close(out["image"].affine, AFFINE)
    # a prediction without the record is denormalised with the reference key's parameters
    out["pred"] = out["image"].as_tensor() * 1.0
    restored = DenormalizeIntensityd(keys=["pred", "missing"], reference_key="image", allow_missing_keys=True)(out)
    scale = float(img.max())
    np.testing.assert_allclose(restored["pred"].numpy() / scale, img.numpy() / scale, atol=1e-5)
    restored = DenormalizeIntensityd(keys="image")(out)
    np.testing.assert_allclose(restored["image"].numpy() / scale, img.numpy() / scale, atol=1e-5)
    with pytest.raises(KeyError):
        NormalizeIntensityInMaskd(keys="missing")(data)


def test_ill_arg():
    img, mask = _volume(5)
    for kwargs in ({"lower": 50, "upper": 50}, {"lower": -1}, {"upper": 101}, {"b_min": 1.0, "b_max": 1.0}):
        with pytest.raises(ValueError):
            NormalizeIntensityInMask(**kwargs)
    with pytest.raises(ValueError, match="sub-01_T1w.nii.gz.*empty"):
        NormalizeIntensityInMask()(img, np.zeros_like(mask))
    with pytest.raises(ValueError, match="no voxel > 0"):
        NormalizeIntensityInMask()(MetaTensor(torch.zeros(1, 4, 4, 4) - 1.0))
    with pytest.raises(ValueError, match="constant"):
        NormalizeIntensityInMask()(torch.ones(1, 4, 4, 4))
    with pytest.raises(ValueError, match="does not match"):
        NormalizeIntensityInMask()(img, mask[:-1])
    with pytest.raises(ValueError, match="no intensity normalisation parameters"):
        DenormalizeIntensity()(img)
    with pytest.raises(ValueError, match="lack"):
        DenormalizeIntensity(params={"a_min": 0.0})
    with pytest.raises(ValueError, match="holds no"):
        DenormalizeIntensityd(keys="image", reference_key="image")({"image": img})
    with pytest.raises(ValueError, match="mask_key"):
        NormalizeIntensityInMaskd(keys=["a", "b"], mask_key=["m1", "m2", "m3"])
