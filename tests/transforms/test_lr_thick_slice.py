# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Thick-slice simulation: slice grid, profiles, gaps, metadata, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from pipeline.transforms.grid import spacing_from_affine
from pipeline.transforms.lr_thick_slice import ThickSlice, ThickSliced

SPACING = np.array([1.2, 0.9, 1.0])


def meta_volume(shape: tuple[int, ...], data: torch.Tensor | None = None) -> MetaTensor:
    affine = np.eye(4)
    affine[: len(shape), : len(shape)] = np.diag(SPACING[: len(shape)])
    return MetaTensor(torch.rand(1, *shape) if data is None else data, affine=torch.as_tensor(affine))


@pytest.mark.parametrize(
    "shape, axis, thickness, gap, profile",
    [
        ((16, 16, 40), 2, 5.0, 1.0, "gaussian"),
        ((16, 16, 40), -1, 3.0, 0.0, "boxcar"),
        ((30, 12, 8), 0, 2.4, 0.5, "boxcar"),  # slice spacing 2.9 mm: non-integer factor 2.4167
        ((20, 31), 1, 2.0, 0.25, "gaussian"),
    ],
)
def test_shapes_spacing_and_meta(shape, axis, thickness, gap, profile):
    out = ThickSlice(thickness, axis=axis, gap_mm=gap, profile=profile)(meta_volume(shape))
    dims = len(shape)
    ax = axis % dims
    spacing = thickness + gap
    n_out = int(np.floor(shape[ax] * SPACING[ax] / spacing + 1e-6))
    assert out.shape[1:] == tuple(n_out if d == ax else n for d, n in enumerate(shape))
    expected_spacing = SPACING[:dims].copy()
    expected_spacing[ax] = spacing
    np.testing.assert_allclose(spacing_from_affine(out.affine)[:dims], expected_spacing, atol=1e-12)
    record = out.meta["degradation"]
    assert record["method"] == "thick_slice" and record["axes"] == [ax] and record["profile"] == profile
    assert record["zoom"][ax] == pytest.approx(spacing / SPACING[ax])
    assert record["thickness_mm"] == thickness and record["gap_mm"] == gap and record["slice_spacing_mm"] == spacing


@pytest.mark.parametrize("profile", ["gaussian", "boxcar"])
def test_ramp_read_at_slice_centres(profile):
    """A symmetric profile reads a linear ramp at the slice centre (j + 1/2) S/d - 1/2."""
    ramp = torch.arange(60, dtype=torch.float64).view(1, 1, 1, 60).expand(1, 2, 2, 60)
    out = ThickSlice(3.5, axis=2, gap_mm=1.0, profile=profile)(meta_volume((2, 2, 60), ramp.clone()))
    step = 4.5
    expected = (torch.arange(out.shape[-1], dtype=torch.float64) + 0.5) * step - 0.5
    # exact for the boxcar; the Gaussian's 4-sigma truncation shifts by < 1e-3 voxel at non-integer centres
    torch.testing.assert_close(out[0, 0, 0, 2:-2].as_tensor(), expected[2:-2], atol=1e-3, rtol=0)


def test_boxcar_gap_misses_tissue_between_slices():
    """1 mm voxels, 3 mm slices, 3 mm gaps: slab j covers voxels 6j+1 (half) … 6j+4 (half)."""
    vol = torch.zeros(1, 4, 4, 36)
    vol[..., 5::6] = 1.0  # planes in the gaps
    vol[..., 0::6] = 1.0
    gapped = ThickSlice(3.0, axis=2, gap_mm=3.0, profile="boxcar")(vol)
    assert gapped.shape == (1, 4, 4, 6) and float(gapped.abs().max()) == 0.0
    vol[..., 1::6] = 6.0  # half of voxel 6j+1 is in the slab: weight 0.5 / 3
    torch.testing.assert_close(
        ThickSlice(3.0, axis=2, gap_mm=3.0, profile="boxcar")(vol).as_tensor(), torch.ones(1, 4, 4, 6)
    )


def test_gaussian_profile_fwhm():
    delta = torch.zeros(1, 2, 2, 41, dtype=torch.float64)
    delta[..., 20] = 1.0
    out = ThickSlice(5.0, axis=2, profile="gaussian")(delta)[0, 0, 0]  # slices centred at voxels 5 j + 2
    # the delta is 3 voxels from slice 3's centre (17) and 2 voxels from slice 4's (22)
    sigma = 5.0 / (2 * np.sqrt(2 * np.log(2)))
    assert float(out[3] / out[4]) == pytest.approx(np.exp(-(9 - 4) / (2 * sigma**2)), rel=1e-9)


def test_dict_and_missing_keys():
    img = meta_volume((8, 8, 20))
    out = ThickSliced(["image", "seg"], 4.0, gap_mm=1.0, allow_missing_keys=True)({"image": img})
    torch.testing.assert_close(out["image"], ThickSlice(4.0, gap_mm=1.0)(img))
    with pytest.raises(KeyError):
        ThickSliced("seg", 4.0)({"image": img})


@pytest.mark.parametrize("kind", ["numpy", "tensor"])
def test_plain_inputs(kind):
    arr = np.random.default_rng(0).random((1, 6, 6, 20)).astype(np.float32)
    out = ThickSlice(4.0)(arr if kind == "numpy" else torch.as_tensor(arr))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 6, 6, 5)


def test_ill_arg():
    with pytest.raises(ValueError):
        ThickSlice(0.0)
    with pytest.raises(ValueError):
        ThickSlice(3.0, gap_mm=-1.0)
    with pytest.raises(ValueError):
        ThickSlice(3.0, profile="sinc")
    with pytest.raises(ValueError):
        ThickSlice(3.0, axis=3)
    with pytest.raises(ValueError):
        ThickSlice(1.0, axis=0)(meta_volume((8, 8, 8)))  # thinner than the 1.2 mm voxels
    with pytest.raises(ValueError):
        ThickSlice(6.0, axis=2, gap_mm=4.0)(meta_volume((8, 8, 8)))  # 10 mm slices in an 8 mm field of view
    with pytest.raises(ValueError):
        ThickSlice(2.0, axis=2)(torch.rand(1, 8, 8))
