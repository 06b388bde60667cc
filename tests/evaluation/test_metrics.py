# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Masked PSNR/SSIM/NRMSE, whole-volume and slice-wise, on hand-checkable cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.metrics.regression import compute_ssim_and_cs

from pipeline.evaluation.metrics import data_range, nrmse, psnr, slicewise_metrics, ssim, ssim_map
from tests.conftest import blob_volume

SHAPE = (24, 28, 20)


@pytest.fixture
def hr() -> np.ndarray:
    return blob_volume(SHAPE)


@pytest.fixture
def mask() -> np.ndarray:
    m = np.zeros(SHAPE, dtype=bool)
    m[4:20, 5:23, 3:17] = True
    return m


def test_data_range_is_max_minus_min_inside_mask(hr, mask):
    hr = hr.copy()
    hr[~mask] = 1e6  # outside values are ignored
    inside = hr[mask]
    assert data_range(hr, mask) == pytest.approx(float(inside.max() - inside.min()))


@pytest.mark.parametrize("kind", ["numpy", "tensor", "metatensor"])
@pytest.mark.parametrize("channel", [False, True])
def test_identical_images(hr, mask, kind, channel):
    image = {"numpy": hr, "tensor": torch.from_numpy(hr), "metatensor": MetaTensor(torch.from_numpy(hr))}[kind]
    image = image[None] if channel else image
    value_range = data_range(hr, mask)
    assert psnr(image, image, mask, value_range) == math.inf
    assert ssim(image, image, mask, value_range) == pytest.approx(1.0, abs=1e-6)
    assert nrmse(image, image, mask) == 0.0
    sw = slicewise_metrics(image, image, mask, value_range, slice_axis=2)
    assert sw["psnr_slice"] == math.inf
    assert sw["ssim_slice"] == pytest.approx(1.0, abs=1e-6)
    assert sw["nrmse_slice"] == 0.0


def test_constant_offset_gives_known_psnr_and_nrmse(hr, mask):
    # MSE = c² inside the mask → PSNR = 20·log10(L / c); NRMSE = c·sqrt(n) / ‖HR‖.
    offset = 2.5
    value_range = 100.0
    sr = hr + offset
    assert psnr(sr, hr, mask, value_range) == pytest.approx(20 * math.log10(value_range / offset))
    expected_nrmse = offset * math.sqrt(mask.sum()) / np.linalg.norm(hr[mask].astype(np.float64))
    assert nrmse(sr, hr, mask) == pytest.approx(expected_nrmse)
    sw = slicewise_metrics(sr, hr, mask, value_range, slice_axis=0)
    assert sw["psnr_slice"] == pytest.approx(20 * math.log10(value_range / offset))
    assert sw["n_slices"] == 16
    assert ssim(sr, hr, mask, value_range) < 1.0


def test_voxels_outside_mask_do_not_change_metrics(hr, mask):
    value_range = data_range(hr, mask)
    rng = np.random.default_rng(1)
    sr = hr + rng.normal(0, 3.0, SHAPE).astype(np.float32)
    sr_changed, hr_changed = sr.copy(), hr.copy()
    sr_changed[~mask] = rng.normal(500, 100, (~mask).sum())
    hr_changed[~mask] = -300.0
    for axis in (0, 1, 2):
        assert slicewise_metrics(sr_changed, hr_changed, mask, value_range, axis) == pytest.approx(
            slicewise_metrics(sr, hr, mask, value_range, axis)
        )
    assert psnr(sr_changed, hr_changed, mask, value_range) == pytest.approx(psnr(sr, hr, mask, value_range))
    assert ssim(sr_changed, hr_changed, mask, value_range) == pytest.approx(ssim(sr, hr, mask, value_range))
    assert nrmse(sr_changed, hr_changed, mask) == pytest.approx(nrmse(sr, hr, mask))


def test_worse_image_scores_worse(hr, mask):
    value_range = data_range(hr, mask)
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 1.0, SHAPE)
    small, large = hr + 2 * noise, hr + 8 * noise
    assert psnr(small, hr, mask, value_range) > psnr(large, hr, mask, value_range)
    assert ssim(small, hr, mask, value_range) > ssim(large, hr, mask, value_range)
    assert nrmse(small, hr, mask) < nrmse(large, hr, mask)


@pytest.mark.parametrize("spatial_dims, shape", [(2, (3, 1, 30, 25)), (3, (2, 1, 16, 19, 13))])
def test_ssim_map_matches_monai(spatial_dims, shape):
    gen = torch.Generator().manual_seed(0)
    hr = 50 * torch.rand(shape, generator=gen)
    sr = hr + 5 * torch.rand(shape, generator=gen)
    expected, _ = compute_ssim_and_cs(sr, hr, spatial_dims, [11] * spatial_dims, [1.5] * spatial_dims, data_range=50.0)
    result = ssim_map(sr, hr, 50.0, spatial_dims)
    assert result.shape == expected[:, 0].shape == (shape[0], *[n - 10 for n in shape[2:]])
    torch.testing.assert_close(result, expected[:, 0], atol=1e-5, rtol=1e-5)


def test_ssim_with_full_mask_is_mean_of_monai_map(hr):
    rng = np.random.default_rng(3)
    sr = hr + rng.normal(0, 2.0, SHAPE).astype(np.float32)
    expected, _ = compute_ssim_and_cs(
        torch.from_numpy(sr)[None, None], torch.from_numpy(hr)[None, None], 3, [11] * 3, [1.5] * 3, data_range=80.0
    )
    # MONAI works in float32 with a 3D kernel (variance cancellation ~1e-4 here); ours is within 1e-6 of float64.
    assert ssim(sr, hr, np.ones(SHAPE, dtype=bool), 80.0) == pytest.approx(float(expected.mean()), abs=2e-4)


def test_ssim_2d(hr, mask):
    sr = hr[:, :, 10] + 1.0
    assert ssim(hr[:, :, 10], hr[:, :, 10], mask[:, :, 10], 100.0, spatial_dims=2) == pytest.approx(1.0, abs=1e-6)
    assert 0.0 < ssim(sr, hr[:, :, 10], mask[:, :, 10], 100.0, spatial_dims=2) < 1.0


def test_slicewise_counts_only_slices_with_enough_mask(hr, mask):
    value_range = data_range(hr, mask)
    sr = hr + 1.0
    mask = mask.copy()
    mask[:, :, 3] = False
    mask[10, 10, 3] = True  # one voxel: below 5 % of a 24 x 28 slice
    assert slicewise_metrics(sr, hr, mask, value_range, slice_axis=2)["n_slices"] == 13
    assert slicewise_metrics(sr, hr, mask, value_range, slice_axis=2, min_mask_fraction=0.0)["n_slices"] == 14
    none = slicewise_metrics(sr, hr, mask, value_range, slice_axis=2, min_mask_fraction=0.99)
    assert none["n_slices"] == 0 and math.isnan(none["psnr_slice"])


def test_ill_arg(hr, mask):
    with pytest.raises(ValueError, match="does not match"):
        psnr(hr[:-1], hr, mask, 1.0)
    with pytest.raises(ValueError, match="mask shape"):
        nrmse(hr, hr, mask[:-1])
    with pytest.raises(ValueError, match="empty"):
        ssim(hr, hr, np.zeros(SHAPE, dtype=bool), 1.0)
    with pytest.raises(ValueError, match="data_range"):
        psnr(hr, hr, mask, 0.0)
    with pytest.raises(ValueError, match="slice_axis"):
        slicewise_metrics(hr, hr, mask, 1.0, slice_axis=3)
    with pytest.raises(ValueError, match="at least 11"):
        ssim(hr[:8], hr[:8], mask[:8], 1.0)
    with pytest.raises(ValueError, match="spatial axes"):
        psnr(hr[None, None], hr[None, None], mask, 1.0)
