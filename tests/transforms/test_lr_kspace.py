# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""k-space truncation (mDCSRN degradation): kept range, band limit, grids, metadata, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from pipeline.transforms.grid import spacing_from_affine
from pipeline.transforms.lr_kspace import (
    KSpaceTruncation,
    KSpaceTruncationd,
    kept_frequencies,
    kspace_mask,
    outside_energy_ratio,
    truncate_kspace,
)

SPACING = (1.2, 0.9, 3.0)


def phantom(shape: tuple[int, ...]) -> torch.Tensor:
    """Brain-like positive phantom (1, *shape): a sharp-edged ellipsoid with a bright blob."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    vol = 100.0 * ((grid**2).sum(0) < 0.6) + 60.0 * np.exp(-((grid[0] - 0.3) ** 2 + (grid[1] + 0.2) ** 2) / 0.02) + 5.0
    return torch.as_tensor(vol, dtype=torch.float32)[None]


def meta_volume(shape: tuple[int, ...]) -> MetaTensor:
    affine = np.diag([*SPACING[: len(shape)], *([1.0] * (4 - len(shape)))])
    affine[: len(shape), 3] = [-20.0, 10.0, 4.0][: len(shape)]
    return MetaTensor(phantom(shape), affine=torch.as_tensor(affine), meta={"filename_or_obj": "phantom.nii.gz"})


@pytest.mark.parametrize(
    "n, factor, expected",
    [
        (8, 2, [-2, -1, 0, 1]),
        (7, 2, [-1, 0, 1]),
        (9, 3, [-1, 0, 1]),
        (10, 2, [-2, -1, 0, 1, 2]),
        (5, 1, [-2, -1, 0, 1, 2]),
    ],
)
def test_kept_frequencies(n, factor, expected):
    assert kept_frequencies(n, factor).tolist() == expected


@pytest.mark.parametrize("shape", [(8, 8, 6), (9, 7, 5), (16, 15, 4)])
def test_mask_is_centred_block(shape):
    mask = kspace_mask(shape, (2, 3), (0, 1))
    centred = torch.fft.fftshift(mask).nonzero()
    for axis, f in zip((0, 1), (2, 3)):
        n, m = shape[axis], shape[axis] // f
        assert centred[:, axis].min() == n // 2 - m // 2 and centred[:, axis].max() == n // 2 + (m - 1) // 2
    assert mask.sum() == (shape[0] // 2) * (shape[1] // 3) * shape[2]


HR_CASES = [
    ((32, 32, 32), (2, 2), (1, 2)),
    ((33, 31, 29), (2, 2), (1, 2)),
    ((32, 30, 27), (3, 2, 1.5), (0, 1, 2)),
    ((32, 31), (2,), (-1,)),
]


@pytest.mark.parametrize("shape, zoom, axes", HR_CASES)
def test_band_limit_on_hr_grid(shape, zoom, axes, record_property):
    img = phantom(shape)
    z = truncate_kspace(img, zoom, axes)
    complex_ratio = outside_energy_ratio(z, zoom, axes)
    magnitude_ratio = outside_energy_ratio(z.abs(), zoom, axes)
    record_property("complex_outside_ratio", complex_ratio)
    record_property("magnitude_outside_ratio", magnitude_ratio)
    print(f"{shape} f={zoom}: outside energy complex {complex_ratio:.2e}, magnitude {magnitude_ratio:.2e}")
    assert complex_ratio < 1e-10
    assert magnitude_ratio < 1e-2  # |.| widens the spectrum a little (documented)
    assert outside_energy_ratio(img, zoom, axes) > 1e-3  # the phantom has energy there to remove


@pytest.mark.parametrize("shape, zoom, axes", HR_CASES)
@pytest.mark.parametrize("grid", ["hr", "lr"])
def test_shapes_and_spacing(shape, zoom, axes, grid):
    img = meta_volume(shape)
    out = KSpaceTruncation(zoom, axes=axes, output_grid=grid)(img)
    dims = len(shape)
    full = np.ones(dims)
    for a, f in zip(axes, zoom):
        full[a % dims] = f
    expected = shape if grid == "hr" else tuple(int(np.floor(n / f + 1e-6)) for n, f in zip(shape, full))
    assert tuple(out.shape[1:]) == expected and out.dtype == torch.float32
    spacing = spacing_from_affine(out.affine)[:dims]
    np.testing.assert_allclose(spacing, np.array(SPACING[:dims]) * (full if grid == "lr" else 1.0), atol=1e-12)
    if grid == "hr":
        torch.testing.assert_close(out.affine, img.affine)
    record = out.meta["degradation"]
    assert record["method"] == "kspace_truncation" and record["output_grid"] == grid
    assert record["zoom"] == pytest.approx(full.tolist())
    assert record["input_shape"] == list(shape) and record["output_shape"] == list(expected)
    assert record["output_spacing_mm"] == pytest.approx(spacing.tolist())
    assert out.meta["filename_or_obj"] == "phantom.nii.gz"


@pytest.mark.parametrize("grid", ["hr", "lr"])
def test_constant_keeps_intensity_units(grid):
    out = KSpaceTruncation((2, 3), axes=(0, 2), output_grid=grid)(torch.full((2, 13, 8, 12), 7.0))
    torch.testing.assert_close(out.as_tensor(), torch.full_like(out.as_tensor(), 7.0))


def test_lr_grid_is_cropped_kspace_with_half_voxel_ramp():
    x = torch.rand(1, 16, 12, 6, dtype=torch.float64)
    z = truncate_kspace(x, 2, (0, 1), output_grid="lr")
    k = torch.fft.fftn(x, dim=(1, 2))
    for dim, n in ((1, 16), (2, 12)):
        s = torch.as_tensor(kept_frequencies(n, 2))
        ramp = torch.exp(2j * np.pi * s * 0.5 / n)  # LR voxel j sits at HR coordinate 2 j + 1/2
        k = k.index_select(dim, s % n) * ramp.view([-1 if d == dim else 1 for d in range(4)])
        k = k.index_select(dim, torch.as_tensor(np.argsort(s.numpy() % (n // 2))))  # m-point DFT order
    expected = torch.fft.ifftn(k, dim=(1, 2)) * (8 * 6) / (16 * 12)
    torch.testing.assert_close(z, expected)


def test_lr_grid_samples_the_hr_result_at_block_centres():
    """The LR grid holds the HR-grid result's band-limited image at HR coordinates f j + (f-1)/2."""
    x = phantom((24, 21, 10)).double()
    lr = truncate_kspace(x, 3, (0, 1), output_grid="lr")
    k = torch.fft.fftn(truncate_kspace(x, 3, (0, 1)), dim=(1, 2))  # HR-grid result's k-space
    for dim, n in ((1, 24), (2, 21)):
        s = torch.as_tensor(np.fft.fftfreq(n, 1 / n))
        k = k * torch.exp(2j * np.pi * s * 1.0 / n).view([-1 if d == dim else 1 for d in range(4)])  # shift by 1 voxel
    torch.testing.assert_close(lr, torch.fft.ifftn(k, dim=(1, 2))[:, ::3, ::3])


def test_dict_and_missing_keys():
    img = meta_volume((16, 16, 8))
    t = KSpaceTruncationd(["image", "label"], zoom=2, axes=(0, 1), output_grid="lr", allow_missing_keys=True)
    out = t({"image": img, "other": 1})
    assert out["image"].shape == (1, 8, 8, 8) and out["other"] == 1 and "label" not in out
    torch.testing.assert_close(out["image"], KSpaceTruncation(2, axes=(0, 1), output_grid="lr")(img))
    with pytest.raises(KeyError):
        KSpaceTruncationd("label")({"image": img})


@pytest.mark.parametrize("kind", ["numpy", "tensor"])
def test_plain_inputs(kind):
    arr = np.random.default_rng(0).random((1, 10, 9, 8)).astype(np.float32)
    img = arr if kind == "numpy" else torch.as_tensor(arr)
    out = KSpaceTruncation(2, axes=(1, 2), output_grid="lr")(img)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 10, 4, 4)
    assert out.meta["degradation"]["input_spacing_mm"] == [1.0, 1.0, 1.0]
    assert torch.is_complex(truncate_kspace(torch.as_tensor(arr), 2, (0,)))


def test_ill_arg():
    with pytest.raises(ValueError):
        KSpaceTruncation((2, 2), axes=(1,))  # zoom vs axes
    with pytest.raises(ValueError):
        KSpaceTruncation(0.5)
    with pytest.raises(ValueError):
        KSpaceTruncation(2, axes=(1, 1))
    with pytest.raises(ValueError):
        KSpaceTruncation(2, output_grid="mid")
    with pytest.raises(ValueError):
        KSpaceTruncation((2, 2))(torch.rand(1, 8, 8))  # default axes (1, 2) on a 2D image
    with pytest.raises(ValueError):
        KSpaceTruncation(10, axes=(0,))(torch.rand(1, 8, 8, 8))  # fewer voxels than the factor
    with pytest.raises(ValueError):
        KSpaceTruncation()(torch.rand(8, 8))  # no channel dim
    with pytest.raises(ValueError):
        kspace_mask((8, 8), 2, (2,))
